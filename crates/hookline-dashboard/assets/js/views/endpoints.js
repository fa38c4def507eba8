// An application's endpoints: status, subscribed events, last delivery, 24 h success rate
// and attempts per hour.

import { get, enc } from "../api.js";
import { h, mount, badge, facts } from "../dom.js";
import { when, statusBadge, responseSummary, successRate } from "../format.js";
import { hourlyChart } from "../chart.js";

export async function endpointsView(view, [app]) {
  const [application, endpoints] = await Promise.all([
    get(`/app/${enc(app)}`),
    get(`/app/${enc(app)}/endpoint?limit=250`),
  ]);
  document.title = `${application.name} · Hookline`;
  const activities = await Promise.all(endpoints.data.map((ep) =>
    get(`/app/${enc(app)}/endpoint/${enc(ep.id)}/activity?hours=24`).catch(() => null)));
  mount(view,
    h("h1", {}, application.name),
    h("p", { class: "muted" }, `Application ${application.id}`),
    h("h2", {}, "Endpoints"),
    endpoints.data.length
      ? h("ul", { class: "cards" }, endpoints.data.map((ep, i) => endpointCard(app, ep, activities[i])))
      : h("p", { class: "muted" }, "No endpoints yet."));
}

function endpointCard(app, ep, activity) {
  const last = activity?.lastAttempt;
  const events = ep.filterTypes?.length
    ? h("span", { class: "chips" }, ep.filterTypes.map((t) => h("code", {}, t)))
    : "All events";
  return h("li", { class: "card endpoint", "data-endpoint": ep.id },
    h("div", { class: "card-head" },
      h("a", { class: "url", href: `#/app/${enc(app)}/endpoint/${enc(ep.id)}` }, ep.url),
      h("span", { class: "actions" },
        ep.fifo ? badge("Ordered (FIFO)", "neutral") : null,
        ep.disabled ? badge("Disabled", "bad") : badge("Enabled", "ok"))),
    ep.description ? h("p", {}, ep.description) : null,
    facts([
      ["Events", events],
      ["Last delivery", last ? h("span", {}, when(last.timestamp), " ", statusBadge(last.status), " ", responseSummary(last)) : "never"],
      ["Success (24 h)", activity ? successRate(activity.succeeded, activity.failed) : "unavailable"],
    ]),
    activity ? hourlyChart(activity.buckets,
      `Attempts per hour over the last 24 hours: ${activity.succeeded} succeeded, ${activity.failed} failed`) : null);
}
