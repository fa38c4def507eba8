// DOM building. Text always enters the page as text, never as HTML: payloads, responses and
// names come from outside and must not be able to run in the dashboard.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttributes(el, attrs);
  append(el, children);
  return el;
}

function setAttributes(el, attrs) {
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.setAttribute("class", value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A table that scrolls sideways on a narrow screen instead of overflowing the page. */
export function table(caption, headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.length
        ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))
        : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing here yet.")))));
}

/** Label–value pairs. */
export function facts(pairs) {
  return h("dl", { class: "facts" },
    pairs.filter(Boolean).map(([label, value]) => h("div", {}, h("dt", {}, label), h("dd", {}, value))));
}

export function badge(text, kind = "neutral") {
  return h("span", { class: `badge badge-${kind}` }, text);
}

/** A live region where an action reports its result. */
export function output(label) {
  return h("output", { class: "result", "aria-live": "polite", "aria-label": label });
}

export function errorBox(error) {
  return h("div", { class: "error", role: "alert" }, error?.message ?? String(error));
}

/** Disables `button` while `action` runs; reports a failure into `out`. */
export async function busy(button, out, action) {
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (out) mount(out, errorBox(error));
  } finally {
    button.disabled = false;
  }
}
