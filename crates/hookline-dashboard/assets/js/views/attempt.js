// One attempt: the request as sent, the response as received, and a resend button whose new
// attempt appears in place.

import { get, post, enc } from "../api.js";
import { h, mount, facts, output, busy } from "../dom.js";
import { when, statusBadge, responseSummary, codeBlock, headerTable } from "../format.js";
import { attemptTable } from "./attempts.js";

export async function attemptView(view, [app, msg, attemptId]) {
  const [attempt, message] = await Promise.all([
    get(`/app/${enc(app)}/msg/${enc(msg)}/attempt/${enc(attemptId)}`),
    get(`/app/${enc(app)}/msg/${enc(msg)}`),
  ]);
  document.title = `Attempt ${attempt.attemptNumber} of ${msg} · Hookline`;
  const endpointLink = `#/app/${enc(app)}/endpoint/${enc(attempt.endpointId)}`;
  const history = h("section", { id: "message-attempts", "aria-labelledby": "message-attempts-title" });
  const drawHistory = async () => {
    const attempts = await get(`/app/${enc(app)}/attempt/msg/${enc(msg)}?limit=50`);
    const mine = attempts.data.filter((a) => a.endpointId === attempt.endpointId);
    mount(history,
      h("h2", { id: "message-attempts-title" }, "Every attempt of this message to this endpoint"),
      attemptTable(app, null, mine));
    return mine;
  };
  const out = output("Resend result");
  out.id = "resend-result";
  const resend = h("button", {
    type: "button",
    class: "primary",
    onclick: () => busy(resend, out, async () => {
      const before = (await drawHistory()).length;
      await post(`/app/${enc(app)}/msg/${enc(msg)}/endpoint/${enc(attempt.endpointId)}/resend`, {});
      mount(out, "Resend queued…");
      const newest = await waitForAttempt(drawHistory, before);
      mount(out, newest
        ? h("span", {}, "New attempt: ", statusBadge(newest.status), " ", responseSummary(newest), " ",
          h("a", { href: `#/app/${enc(app)}/msg/${enc(msg)}/attempt/${enc(newest.id)}` }, "open it"))
        : "Resend queued; its attempt has not been recorded yet.");
    }),
  }, "Resend this message");

  mount(view,
    h("p", {}, h("a", { href: endpointLink }, "← Endpoint")),
    h("h1", {}, `Attempt ${attempt.attemptNumber} to `, h("span", { class: "url" }, attempt.url)),
    h("p", {}, statusBadge(attempt.status), " ", responseSummary(attempt)),
    facts([
      ["When", when(attempt.timestamp)],
      ["Took", `${attempt.responseDurationMs} ms`],
      ["Error kind", attempt.errorKind ?? "none"],
      ["Trigger", attempt.triggerType === 1 ? "Manual (resend or recover)" : "Scheduled"],
      ["Event type", h("code", {}, message.eventType)],
      ["Message", h("a", { href: `#/app/${enc(app)}/messages?q=${enc(msg)}` }, msg)],
      message.eventId ? ["Event ID", h("code", {}, message.eventId)] : null,
    ]),
    h("p", { class: "actions" }, resend, out),
    h("div", { class: "grid two" },
      h("section", { "aria-labelledby": "request-title" },
        h("h2", { id: "request-title" }, "Request"),
        h("p", {}, h("code", {}, `POST ${attempt.url}`)),
        headerTable("Request headers", attempt.requestHeaders),
        codeBlock("Request body", JSON.stringify(message.payload))),
      h("section", { id: "response", "aria-labelledby": "response-title" },
        h("h2", { id: "response-title" }, "Response"),
        h("p", {}, attempt.responseStatusCode ? `HTTP ${attempt.responseStatusCode}` : responseSummary(attempt)),
        headerTable("Response headers", attempt.responseHeaders),
        codeBlock("Response body", attempt.response))),
    history);
  await drawHistory();
}

/** Redraws the history until it holds more than `before` attempts (30 s at most). */
async function waitForAttempt(drawHistory, before) {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const attempts = await drawHistory();
    if (attempts.length > before) return attempts[0];
  }
  return null;
}
