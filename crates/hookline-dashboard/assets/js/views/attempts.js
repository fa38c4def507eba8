// Attempt tables, and an endpoint's attempt log filtered by status and event type, paged
// through the URL so the browser's back button and links work.

import { get, query, enc } from "../api.js";
import { h, table } from "../dom.js";
import { when, statusBadge, responseSummary, STATUS_NAMES } from "../format.js";

export function attemptTable(app, caption, attempts) {
  const rows = attempts.map((a) => [
    when(a.timestamp),
    a.eventType ? h("code", {}, a.eventType) : h("span", { class: "muted" }, "—"),
    h("code", {}, a.msgId),
    statusBadge(a.status),
    responseSummary(a),
    `${a.responseDurationMs} ms`,
    h("a", {
      href: `#/app/${enc(app)}/msg/${enc(a.msgId)}/attempt/${enc(a.id)}`,
      "aria-label": `Details of attempt ${a.attemptNumber} of ${a.msgId}`,
    }, "Details"),
  ]);
  return table(caption, ["When", "Event", "Message", "Status", "Response", "Took", ""], rows);
}

export async function attemptLog(app, endpoint, params, eventTypes) {
  const status = params.get("status") ?? "";
  const eventType = params.get("event_type") ?? "";
  const iterator = params.get("iterator") ?? "";
  const page = await get(`/app/${enc(app)}/attempt/endpoint/${enc(endpoint)}${query({
    limit: 20, status, event_types: eventType, iterator,
  })}`);
  const here = `#/app/${enc(app)}/endpoint/${enc(endpoint)}`;
  const statusSelect = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "Any status"),
    Object.entries(STATUS_NAMES).map(([code, name]) =>
      h("option", { value: code, selected: code === status }, name)));
  const typeSelect = h("select", { id: "filter-event-type", name: "event_type" },
    h("option", { value: "" }, "Any event type"),
    [...new Set([...eventTypes, eventType].filter(Boolean))].map((name) =>
      h("option", { value: name, selected: name === eventType }, name)));
  const filters = h("form", {
    class: "filters",
    "aria-label": "Filter attempts",
    onsubmit: (event) => {
      event.preventDefault();
      location.hash = `${here}${query({ status: statusSelect.value, event_type: typeSelect.value })}`;
    },
  },
    h("label", { for: "filter-status" }, "Status"), statusSelect,
    h("label", { for: "filter-event-type" }, "Event type"), typeSelect,
    h("button", { type: "submit" }, "Apply filters"));
  const pager = h("div", { class: "pager" },
    iterator ? h("a", { class: "button", href: `${here}${query({ status, event_type: eventType })}` }, "Newest") : null,
    page.done ? null : h("a", {
      class: "button",
      href: `${here}${query({ status, event_type: eventType, iterator: page.iterator })}`,
    }, "Older attempts"));
  return h("section", { id: "attempt-log", "aria-labelledby": "attempt-log-title" },
    h("h2", { id: "attempt-log-title" }, "Attempt log"),
    filters,
    attemptTable(app, null, page.data),
    pager);
}
