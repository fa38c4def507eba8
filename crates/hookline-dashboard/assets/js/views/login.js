// Login for people who hold an admin token. App users arrive through their portal link.

import { api, saveSession } from "../api.js";
import { h, mount, errorBox } from "../dom.js";

export function loginView(view) {
  document.title = "Log in · Hookline";
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true });
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card narrow", onsubmit: (event) => submit(event, input, out) },
    h("h1", {}, "Hookline dashboard"),
    h("p", {}, "Open the link your platform gave you, or log in with an admin token."),
    h("label", { for: "token" }, "Admin token"),
    input,
    h("button", { type: "submit", class: "primary" }, "Log in"),
    out);
  mount(view, form);
  input.focus();
}

async function submit(event, input, out) {
  event.preventDefault();
  const token = input.value.trim();
  try {
    await api("GET", "/app?limit=1", undefined, token);
    saveSession({ token, kind: "admin" });
    location.hash = "#/apps";
  } catch (error) {
    const message = error.status === 403
      ? "This token belongs to one application: open the portal link it came with."
      : error.status === 401 ? "That token is not accepted." : error.message;
    mount(out, errorBox(new Error(message)));
  }
}
