// The dashboard's entry: login from a portal link, routing on the URL fragment, the frame.

import { session, saveSession, clearSession } from "./api.js";
import { h, mount, errorBox } from "./dom.js";
import { loginView } from "./views/login.js";
import { appsView } from "./views/apps.js";
import { backlogView } from "./views/backlog.js";
import { endpointsView } from "./views/endpoints.js";
import { endpointView } from "./views/endpoint.js";
import { attemptView } from "./views/attempt.js";
import { messagesView } from "./views/messages.js";
import { eventTypesView } from "./views/event_types.js";

const ROUTES = [
  [/^\/apps$/, appsView],
  [/^\/backlog$/, backlogView],
  [/^\/app\/([^/]+)$/, endpointsView],
  [/^\/app\/([^/]+)\/endpoint\/([^/]+)$/, endpointView],
  [/^\/app\/([^/]+)\/msg\/([^/]+)\/attempt\/([^/]+)$/, attemptView],
  [/^\/app\/([^/]+)\/messages$/, messagesView],
  [/^\/app\/([^/]+)\/event-types$/, eventTypesView],
];

/** A portal link carries `#token=…&app=…`: keep it for this tab and drop it from the URL. */
function acceptPortalLink() {
  if (!location.pathname.endsWith("/login")) return;
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  const app = params.get("app");
  if (token && app) saveSession({ token, kind: "app", app });
  history.replaceState(null, "", token && app ? `/dashboard#/app/${encodeURIComponent(app)}` : "/dashboard#/");
}

function parseHash() {
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  return { path: path || "/", params: new URLSearchParams(search) };
}

function navigation(current, app) {
  const nav = document.getElementById("nav");
  const link = (href, text) => h("a", { href, "aria-current": current === href ? "page" : null }, text);
  const admin = session()?.kind === "admin";
  mount(nav,
    admin ? [link("#/apps", "Apps"), link("#/backlog", "Backlog")] : null,
    app ? [
      link(`#/app/${app}`, "Endpoints"),
      link(`#/app/${app}/messages`, "Messages"),
      link(`#/app/${app}/event-types`, "Event types"),
    ] : null);
  document.getElementById("logout").hidden = !session();
}

async function render() {
  const main = document.getElementById("main");
  const { path, params } = parseHash();
  const current = session();
  const view = h("div", { class: "view" });
  mount(main, view);
  if (!current) {
    navigation(null, null);
    return loginView(view);
  }
  if (path === "/") {
    location.replace(current.app ? `#/app/${encodeURIComponent(current.app)}` : "#/apps");
    return;
  }
  for (const [pattern, show] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    const args = match.slice(1).map(decodeURIComponent);
    navigation(`#${path}`, match[1]);
    try {
      await show(view, args, params);
    } catch (error) {
      mount(view, errorBox(error));
    }
    return;
  }
  mount(view, errorBox(new Error("No such page.")));
}

acceptPortalLink();
document.getElementById("logout").addEventListener("click", () => {
  clearSession();
  location.hash = "#/";
  render();
});
window.addEventListener("hashchange", () => {
  render();
  document.getElementById("main").focus({ preventScroll: true });
});
window.addEventListener("hookline:logged-out", () => render());
render();
