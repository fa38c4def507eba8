// The event type catalog with an example payload for each type that has a schema.

import { get } from "../api.js";
import { h, mount, badge } from "../dom.js";
import { codeBlock } from "../format.js";

export async function eventTypesView(view) {
  document.title = "Event types · Hookline";
  const page = await get("/event-type?limit=250&with_content=true");
  mount(view,
    h("h1", {}, "Event types"),
    page.data.length
      ? h("ul", { class: "cards" }, page.data.map(eventTypeCard))
      : h("p", { class: "muted" }, "No event types are defined."));
}

function eventTypeCard(type) {
  const example = exampleOf(type.schemas);
  return h("li", { class: "card" },
    h("div", { class: "card-head" },
      h("h2", {}, h("code", {}, type.name)),
      type.deprecated ? badge("Deprecated", "warn") : null,
      type.archived ? badge("Archived", "neutral") : null),
    type.description ? h("p", {}, type.description) : null,
    example === undefined
      ? h("p", { class: "muted" }, "No example payload.")
      : codeBlock("Example payload", JSON.stringify(example)));
}

/** The first example in the newest schema version (`{"1": {…, "examples": […]}}`). */
function exampleOf(schemas) {
  if (!schemas) return undefined;
  const versions = Object.keys(schemas).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const schema = schemas[version];
    if (Array.isArray(schema?.examples) && schema.examples.length) return schema.examples[0];
    if (schema?.example !== undefined) return schema.example;
  }
  return undefined;
}
