// One endpoint: its settings (enable/disable, ordered delivery, signing key, TLS and OAuth2,
// headers),
// the line of an ordered endpoint, recovery of failed messages, and its attempt log.

import { get, post, patch, enc } from "../api.js";
import { h, mount, badge, facts, output, busy, errorBox } from "../dom.js";
import { when } from "../format.js";
import { attemptLog } from "./attempts.js";
import { signingSection, reachSection } from "./endpoint_access.js";

export async function endpointView(view, [app, endpoint], params) {
  const base = `/app/${enc(app)}/endpoint/${enc(endpoint)}`;
  const [ep, eventTypes, line] = await Promise.all([
    get(base),
    get("/event-type?limit=250").then((page) => page.data.map((t) => t.name)).catch(() => []),
    get(`${base}/fifo`).catch(() => null),
  ]);
  document.title = `${ep.url} · Hookline`;
  mount(view,
    h("p", {}, h("a", { href: `#/app/${enc(app)}` }, "← Endpoints")),
    h("h1", { class: "url" }, ep.url),
    h("p", {}, ep.disabled ? badge("Disabled", "bad") : badge("Enabled", "ok"), " ",
      ep.fifo ? [badge("Ordered delivery (FIFO)", "neutral"), " "] : null, ep.description),
    facts([
      ["ID", h("code", {}, ep.id)],
      ["Events", ep.filterTypes?.length ? ep.filterTypes.join(", ") : "All events"],
      ["Rate limit", ep.rateLimit ? `${ep.rateLimit}/s` : "none"],
      ["Created", when(ep.createdAt)],
    ]),
    h("div", { class: "actions" },
      toggle(view, base, ep, app, endpoint, params),
      fifoToggle(view, base, ep, app, endpoint, params)),
    // A line may still drain after ordering was turned off: shown while it does.
    ep.fifo || line?.length ? lineSection(app, base, line) : null,
    await attemptLog(app, endpoint, params, eventTypes),
    h("div", { class: "grid" },
      recoverSection(base),
      signingSection(base, ep),
      await reachSection(base),
      await headersSection(base)));
}

function toggle(view, base, ep, app, endpoint, params) {
  const out = output("Enable or disable result");
  const button = h("button", {
    type: "button",
    onclick: () => busy(button, out, async () => {
      await patch(base, { disabled: !ep.disabled });
      await endpointView(view, [app, endpoint], params);
    }),
  }, ep.disabled ? "Enable endpoint" : "Disable endpoint");
  return h("p", {}, button, out);
}

function fifoToggle(view, base, ep, app, endpoint, params) {
  const out = output("Ordered delivery result");
  const question = ep.fifo
    ? "Stop ordered delivery? Messages already in the line are still delivered in order."
    : "Deliver this endpoint's messages one at a time, in the order they were sent? A failing message will hold back the ones after it until it succeeds or runs out of attempts.";
  const button = h("button", {
    type: "button",
    onclick: () => busy(button, out, async () => {
      if (!confirm(question)) return;
      await patch(base, { fifo: !ep.fifo });
      await endpointView(view, [app, endpoint], params);
    }),
  }, ep.fifo ? "Stop ordered delivery" : "Deliver in order (FIFO)");
  return h("p", {}, button, out);
}

/** How often an ordered endpoint's line is read again while its page is shown. */
const LINE_REFRESH_MS = 3000;

/** An ordered endpoint's line: the message holding it back, or how long it is. */
function lineSection(app, base, first) {
  const state = h("p", { id: "fifo-line-state", "aria-live": "polite" });
  const section = h("section", { class: "card", id: "fifo-line", "aria-labelledby": "fifo-title" },
    h("h2", { id: "fifo-title" }, "Ordered delivery (FIFO)"),
    h("p", { class: "muted" },
      "One message at a time, in the order they were sent. A failing message holds back the "
      + "ones after it until it succeeds or runs out of attempts."),
    state);
  mount(state, lineText(app, first));
  // Stops once the page is left or drawn again: the section is then out of the document.
  const timer = setInterval(async () => {
    if (!section.isConnected) {
      clearInterval(timer);
      return;
    }
    try {
      const line = await get(`${base}/fifo`);
      if (section.isConnected) mount(state, lineText(app, line));
    } catch (error) {
      if (section.isConnected) mount(state, errorBox(error));
    }
  }, LINE_REFRESH_MS);
  return section;
}

function lineText(app, line) {
  if (!line) return h("span", { class: "muted" }, "The line could not be read.");
  const { head } = line;
  const message = head
    ? h("a", { href: `#/app/${enc(app)}/messages?q=${enc(head.msgId)}` }, h("code", {}, head.msgId))
    : null;
  if (head?.blocked) {
    return [
      "Blocked by ", message, ` since attempt ${head.attempts}`,
      head.nextAttempt ? [", next attempt ", when(head.nextAttempt)] : ", no attempt left",
      `, ${line.waiting} waiting.`,
    ];
  }
  if (!line.length) return "The line is empty.";
  const count = `${line.length} ${line.length === 1 ? "message" : "messages"} in line`;
  return head ? [count, ", delivering ", message, "."] : `${count}.`;
}

async function headersSection(base) {
  const section = h("section", { class: "card", "aria-labelledby": "headers-title" });
  const out = output("Headers result");
  const draw = async () => {
    const { headers } = await get(`${base}/headers`);
    const remove = (name) => {
      const button = h("button", {
        type: "button",
        class: "link",
        "aria-label": `Remove header ${name}`,
        onclick: () => busy(button, out, async () => {
          await patch(`${base}/headers`, { headers: { [name]: null } });
          await draw();
        }),
      }, "Remove");
      return button;
    };
    const name = h("input", { id: "header-name", required: true, autocomplete: "off" });
    const value = h("input", { id: "header-value", required: true, autocomplete: "off" });
    const add = h("button", { type: "submit" }, "Add header");
    const entries = Object.entries(headers);
    mount(section,
      h("h2", { id: "headers-title" }, "Custom headers"),
      entries.length
        ? h("ul", { class: "plain" }, entries.map(([n, v]) => h("li", {}, h("code", {}, `${n}: ${v}`), " ", remove(n))))
        : h("p", { class: "muted" }, "None."),
      h("form", {
        class: "inline",
        onsubmit: (event) => {
          event.preventDefault();
          busy(add, out, async () => {
            await patch(`${base}/headers`, { headers: { [name.value.trim()]: value.value } });
            await draw();
          });
        },
      },
        h("label", { for: "header-name" }, "Name"), name,
        h("label", { for: "header-value" }, "Value"), value,
        add),
      out);
  };
  try {
    await draw();
  } catch (error) {
    mount(section, h("h2", { id: "headers-title" }, "Custom headers"), errorBox(error));
  }
  return section;
}

function recoverSection(base) {
  const dayAgo = new Date(Date.now() - 24 * 3600 * 1000);
  const local = new Date(dayAgo.getTime() - dayAgo.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const since = h("input", { id: "recover-since", type: "datetime-local", value: local, required: true });
  const out = output("Recovery result");
  out.id = "recover-result";
  const button = h("button", { type: "submit", class: "primary" }, "Resend all failed");
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      busy(button, out, async () => {
        const job = await post(`${base}/recover`, { since: new Date(since.value).toISOString() });
        mount(out, "Recovering…");
        const done = await follow(`${base}/recover/${enc(job.id)}`, out);
        mount(out, done.data.outstanding === 0 ? `Finished. ${summary(done)}` : `Still running. ${summary(done)}`);
      });
    },
  },
    h("label", { for: "recover-since" }, "Failed since"), since, button);
  return h("section", { class: "card", "aria-labelledby": "recover-title" },
    h("h2", { id: "recover-title" }, "Recover failed messages"),
    h("p", { class: "muted" }, "Sends every message that failed since this time once more."),
    form, out);
}

/** Polls a recovery task until it has settled every message it sent, for at most 2 minutes. */
async function follow(path, out) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const job = await get(path);
    if ((job.status !== "running" && job.data.outstanding === 0) || Date.now() > deadline) return job;
    mount(out, `Recovering… ${summary(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

// A recovery is a background task: its counts are in `data`.
function summary(job) {
  const { succeeded, failed, connectionErrors, messagesSent } = job.data;
  return `Succeeded ${succeeded} · Failed ${failed} · Connection errors ${connectionErrors} · Total ${messagesSent}` +
    (job.status === "failed" ? " (the job stopped early)" : "");
}
