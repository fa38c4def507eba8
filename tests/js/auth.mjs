// App portal tokens through the official Svix JavaScript SDK: capabilities, `application`,
// dashboardAccess, logout, expireAll, health, a wrong method and a refused operation.
//
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN (an admin token), RECEIVER_URL. Prints one JSON
// line of what each call did (the HTTP status of every refusal); the Rust test asserts on it.
import { AppPortalCapability } from "svix";
import { HttpMethod, SvixRequest } from "svix/dist/request.js";
import { client, run } from "./lib.mjs";
import { refusal } from "./checks.mjs";

const APP_UID = "js-portal-app";

await run(async () => {
  const admin = client();
  const seen = { health: (await admin.health.get()) ?? null };
  const minted = await admin.authentication.appPortalAccess(APP_UID, {
    application: { name: "Portal from JavaScript" },
    capabilities: [AppPortalCapability.ViewBase, AppPortalCapability.ViewEndpointSecret],
  });
  const app = await admin.application.get(APP_UID);
  seen.app = { uid: app.uid, name: app.name };
  const endpoint = await admin.endpoint.create(app.id, { url: process.env.RECEIVER_URL });

  const viewer = client(minted.token);
  seen.view_secret = {
    list: await refusal(() => viewer.endpoint.list(app.id)),
    getSecret: await refusal(() => viewer.endpoint.getSecret(app.id, endpoint.id)),
    rotateSecret: await refusal(() => viewer.endpoint.rotateSecret(app.id, endpoint.id, {})),
    deleteEndpoint: await refusal(() => viewer.endpoint.delete(app.id, endpoint.id)),
  };
  const managed = await admin.authentication.appPortalAccess(app.id, {
    capabilities: [AppPortalCapability.ViewBase, AppPortalCapability.ManageEndpoint],
  });
  const manager = client(managed.token);
  seen.manage_endpoint = {
    create: await refusal(() =>
      manager.endpoint.create(app.id, { url: process.env.RECEIVER_URL, uid: "js-made" }),
    ),
    sendMessage: await refusal(() =>
      manager.message.create(app.id, { eventType: "a.b", payload: {} }),
    ),
  };
  seen.unknown_capability = await refusal(() =>
    admin.authentication.appPortalAccess(app.id, { capabilities: ["ViewBase", "Bogus"] }),
  );

  // The deprecated dashboardAccess mints a working token with every capability.
  const dashboard = await admin.authentication.dashboardAccess(app.id);
  seen.dashboard_url_has_token = dashboard.url.includes(dashboard.token);
  const full = client(dashboard.token);
  seen.dashboard_token = await refusal(() => full.endpoint.getSecret(app.id, endpoint.id));

  seen.logout = await refusal(() => viewer.authentication.logout());
  seen.after_logout = await refusal(() => viewer.endpoint.list(app.id));
  seen.other_token_after_logout = await refusal(() => full.endpoint.list(app.id));
  seen.admin_logout = await refusal(() => admin.authentication.logout());

  const session = await admin.authentication.appPortalAccess(app.id, { sessionId: "js-s1" });
  await admin.authentication.expireAll(app.id, { sessionIds: ["js-other"] });
  seen.other_session_expired = await refusal(() => client(session.token).endpoint.list(app.id));
  await admin.authentication.expireAll(app.id);
  seen.expire_all = {
    session: await refusal(() => client(session.token).endpoint.list(app.id)),
    dashboard: await refusal(() => full.endpoint.list(app.id)),
    manager: await refusal(() => manager.endpoint.list(app.id)),
  };

  seen.unsupported = await refusal(() => admin.environment.export());
  // The SDK's own request path, with a method the route does not have.
  const wrong = new SvixRequest(HttpMethod.PATCH, "/api/v1/operational-webhook/endpoint");
  seen.wrong_method = await refusal(() => wrong.send(admin.requestCtx, (body) => body));
  return seen;
});
