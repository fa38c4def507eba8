// Every application (admin tokens only).

import { get, query } from "../api.js";
import { h, mount, table } from "../dom.js";
import { when } from "../format.js";

export async function appsView(view, _args, params) {
  document.title = "Apps · Hookline";
  const iterator = params.get("iterator");
  const page = await get(`/app${query({ limit: 50, iterator })}`);
  const rows = page.data.map((app) => [
    h("a", { href: `#/app/${encodeURIComponent(app.id)}` }, app.name),
    app.uid ?? h("span", { class: "muted" }, "—"),
    h("code", {}, app.id),
    when(app.createdAt),
  ]);
  mount(view,
    h("h1", {}, "Applications"),
    table(null, ["Name", "UID", "ID", "Created"], rows),
    page.done ? null : h("a", { class: "button", href: `#/apps?iterator=${encodeURIComponent(page.iterator)}` }, "Next page"));
}
