// Times, statuses and bodies as people read them. Times are shown relative and absolute, in
// the browser's time zone.

import { h, badge } from "./dom.js";

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const absoluteFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
  timeZoneName: "short",
});

const UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

export function relative(date, now = Date.now()) {
  const seconds = Math.round((date.getTime() - now) / 1000);
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relativeFormat.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

export function absolute(date) {
  return absoluteFormat.format(date);
}

/** "2 minutes ago · 24 Nov 2026, 21:03:05 UTC" in a `<time>` element. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: absolute(date) },
    h("span", { class: "relative" }, relative(date)),
    h("span", { class: "absolute" }, ` · ${absolute(date)}`));
}

const STATUS = {
  0: ["Succeeded", "ok"],
  1: ["Pending", "neutral"],
  2: ["Failed", "bad"],
  3: ["Sending", "neutral"],
};

export const STATUS_NAMES = Object.fromEntries(Object.entries(STATUS).map(([k, [name]]) => [k, name]));

export function statusBadge(code) {
  const [name, kind] = STATUS[code] ?? ["Unknown", "neutral"];
  return badge(name, kind);
}

/** The HTTP answer, or why there was none. An open circuit holds an attempt (pending, no
 * request made, its attempt number kept) and gives the message up only when it stays open
 * past the hold bound (failed). */
export function responseSummary(attempt) {
  if (attempt.responseStatusCode) return String(attempt.responseStatusCode);
  if (attempt.errorKind === "circuit_open") {
    return attempt.status === 2 ? "given up: circuit open too long" : "held: circuit open";
  }
  return attempt.errorKind ? `no response (${attempt.errorKind})` : "no response";
}

export function successRate(succeeded, failed) {
  const total = succeeded + failed;
  if (!total) return "no attempts";
  const rate = (100 * succeeded) / total;
  return `${Number.isInteger(rate) ? rate : rate.toFixed(1)} % of ${total}`;
}

/** Pretty-printed when it is JSON, as received otherwise. */
export function pretty(text) {
  if (typeof text !== "string") return JSON.stringify(text, null, 2);
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

const LONG = 24;

/** A code block, folded behind a summary when it is long. */
export function codeBlock(label, text) {
  const body = pretty(text ?? "");
  const pre = h("pre", { class: "code", tabindex: "0", "aria-label": label }, body || "(empty)");
  const lines = body.split("\n").length;
  if (lines <= LONG) return h("div", { class: "block" }, h("h3", {}, label), pre);
  return h("details", { class: "block" },
    h("summary", {}, `${label} (${lines} lines)`), pre);
}

export function headerTable(caption, headers) {
  const entries = Object.entries(headers ?? {});
  if (!entries.length) return h("p", { class: "muted" }, `${caption}: none recorded.`);
  return h("div", { class: "table-wrap" },
    h("table", { class: "headers" },
      h("caption", {}, caption),
      h("tbody", {}, entries.map(([name, value]) =>
        h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, value))))));
}
