// Messages: the most recent ones, or one found by its id or eventId, with its attempts.

import { get, query, enc, ApiError } from "../api.js";
import { h, mount, table, facts } from "../dom.js";
import { when, codeBlock } from "../format.js";
import { attemptTable } from "./attempts.js";

export async function messagesView(view, [app], params) {
  document.title = "Messages · Hookline";
  const q = (params.get("q") ?? "").trim();
  const input = h("input", { id: "message-search", type: "search", value: q, autocomplete: "off" });
  const form = h("form", {
    class: "inline",
    role: "search",
    onsubmit: (event) => {
      event.preventDefault();
      location.hash = `#/app/${enc(app)}/messages${query({ q: input.value.trim() })}`;
    },
  }, h("label", { for: "message-search" }, "Message ID or event ID"), input, h("button", { type: "submit" }, "Search"));
  const results = h("div", {});
  mount(view, h("h1", {}, "Messages"), form, results);
  if (q) return showMessage(results, app, q);
  const page = await get(`/app/${enc(app)}/msg?limit=25`);
  mount(results, table("Most recent messages", ["When", "Event type", "Message", "Event ID"], page.data.map((m) => [
    when(m.timestamp),
    h("code", {}, m.eventType),
    h("a", { href: `#/app/${enc(app)}/messages?q=${enc(m.id)}` }, m.id),
    m.eventId ?? "",
  ])));
}

async function showMessage(results, app, q) {
  let message;
  try {
    message = await get(`/app/${enc(app)}/msg/${enc(q)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      mount(results, h("p", { role: "status" }, `No message with the ID or event ID “${q}”.`));
      return;
    }
    throw error;
  }
  const attempts = await get(`/app/${enc(app)}/attempt/msg/${enc(message.id)}?limit=50`);
  mount(results,
    h("h2", {}, h("code", {}, message.id)),
    facts([
      ["Event type", h("code", {}, message.eventType)],
      ["Event ID", message.eventId ?? "none"],
      ["Received", when(message.timestamp)],
      ["Channels", message.channels?.join(", ") || "none"],
    ]),
    codeBlock("Payload", JSON.stringify(message.payload)),
    attemptTable(app, "Attempts", attempts.data));
}
