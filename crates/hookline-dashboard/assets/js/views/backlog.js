// The backlog (admin tokens only): deliveries pending overall and for the busiest apps and
// endpoints, with how long the oldest has waited; refreshed every few seconds while shown.

import { get, query, enc } from "../api.js";
import { h, mount, table, facts, errorBox } from "../dom.js";
import { when } from "../format.js";

/** How often the page reads the view again. The server's counts move once a second. */
const REFRESH_MS = 3000;
const LIMIT = 10;

/** "850 ms", "42 s", "3 min 5 s", "2 h 10 min", "3 d 4 h". */
export function waited(ms) {
  if (ms === null || ms === undefined) return h("span", { class: "muted" }, "—");
  if (ms < 1000) return `${ms} ms`;
  const seconds = Math.floor(ms / 1000);
  const parts = [
    [Math.floor(seconds / 86400), "d"],
    [Math.floor(seconds / 3600) % 24, "h"],
    [Math.floor(seconds / 60) % 60, "min"],
    [seconds % 60, "s"],
  ];
  // The two largest units from the first that is not zero.
  const first = parts.findIndex(([count]) => count > 0);
  return parts.slice(first, first + 2)
    .filter(([count]) => count > 0)
    .map(([count, unit]) => `${count} ${unit}`)
    .join(" ");
}

function render(backlog) {
  const apps = backlog.apps.map((app) => [
    h("a", { href: `#/app/${enc(app.appId)}` }, app.appUid ?? app.appId),
    h("code", {}, app.appId),
    String(app.pending),
    waited(app.oldestPendingAgeMs),
  ]);
  const endpoints = backlog.endpoints.map((endpoint) => [
    h("a", { href: `#/app/${enc(endpoint.appId)}` }, h("code", {}, endpoint.appId)),
    h("a", { href: `#/app/${enc(endpoint.appId)}/endpoint/${enc(endpoint.endpointId)}` },
      h("code", {}, endpoint.endpointId)),
    String(endpoint.pending),
    waited(endpoint.oldestPendingAgeMs),
  ]);
  return [
    facts([
      ["Pending deliveries", String(backlog.pending)],
      ["Oldest waiting", waited(backlog.oldestPendingAgeMs)],
      ["As of", when(backlog.asOf)],
    ]),
    h("div", { id: "backlog-apps" },
      table("Busiest applications", ["Application", "ID", "Pending", "Oldest waiting"], apps)),
    h("div", { id: "backlog-endpoints" },
      table("Busiest endpoints", ["Application", "Endpoint", "Pending", "Oldest waiting"], endpoints)),
  ];
}

export async function backlogView(view) {
  document.title = "Backlog · Hookline";
  const body = h("div", {});
  mount(view,
    h("h1", {}, "Backlog"),
    h("p", { class: "muted" },
      "Deliveries accepted and not yet delivered, given up or dropped (a retry or an open "
      + "circuit keeps one pending), and how long the oldest has waited. The counts trail "
      + "the deliveries by about a second."),
    body);
  // Stops once the page is left: the view is then no longer in the document.
  const refresh = async () => {
    try {
      const backlog = await get(`/stats/backlog${query({ limit: LIMIT })}`);
      if (view.isConnected) mount(body, render(backlog));
    } catch (error) {
      if (view.isConnected) mount(body, errorBox(error));
    }
    return view.isConnected;
  };
  await refresh();
  const timer = setInterval(async () => {
    if (!(await refresh())) clearInterval(timer);
  }, REFRESH_MS);
}
