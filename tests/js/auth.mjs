// App portal tokens through the official Svix JavaScript SDK: capabilities, `application`,
// dashboardAccess, logout, expireAll, health, a wrong method and a refused operation.
//
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN (an admin token), RECEIVER_URL. Prints one JSON
// line of what each call did (the HTTP status of every refusal); the Rust test asserts on it.
import { ApiException, AppPortalCapability } from "svix";
import { HttpMethod, SvixRequest } from "svix/dist/request.js";
import { client, run } from "./lib.mjs";

const APP_UID = "js-portal-app";

// The HTTP status an SDK call was refused with (and the body it carried), or "ok".
async function status(call) {
  try {
    await call();
    return "ok";
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    return { status: error.code, body: error.body };
  }
}

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
    list: await status(() => viewer.endpoint.list(app.id)),
    getSecret: await status(() => viewer.endpoint.getSecret(app.id, endpoint.id)),
    rotateSecret: await status(() => viewer.endpoint.rotateSecret(app.id, endpoint.id, {})),
    deleteEndpoint: await status(() => viewer.endpoint.delete(app.id, endpoint.id)),
  };
  const managed = await admin.authentication.appPortalAccess(app.id, {
    capabilities: [AppPortalCapability.ViewBase, AppPortalCapability.ManageEndpoint],
  });
  const manager = client(managed.token);
  seen.manage_endpoint = {
    create: await status(() =>
      manager.endpoint.create(app.id, { url: process.env.RECEIVER_URL, uid: "js-made" }),
    ),
    sendMessage: await status(() =>
      manager.message.create(app.id, { eventType: "a.b", payload: {} }),
    ),
  };
  seen.unknown_capability = await status(() =>
    admin.authentication.appPortalAccess(app.id, { capabilities: ["ViewBase", "Bogus"] }),
  );

  // The deprecated dashboardAccess mints a working token with every capability.
  const dashboard = await admin.authentication.dashboardAccess(app.id);
  seen.dashboard_url_has_token = dashboard.url.includes(dashboard.token);
  const full = client(dashboard.token);
  seen.dashboard_token = await status(() => full.endpoint.getSecret(app.id, endpoint.id));

  seen.logout = await status(() => viewer.authentication.logout());
  seen.after_logout = await status(() => viewer.endpoint.list(app.id));
  seen.other_token_after_logout = await status(() => full.endpoint.list(app.id));
  seen.admin_logout = await status(() => admin.authentication.logout());

  const session = await admin.authentication.appPortalAccess(app.id, { sessionId: "js-s1" });
  await admin.authentication.expireAll(app.id, { sessionIds: ["js-other"] });
  seen.other_session_expired = await status(() => client(session.token).endpoint.list(app.id));
  await admin.authentication.expireAll(app.id);
  seen.expire_all = {
    session: await status(() => client(session.token).endpoint.list(app.id)),
    dashboard: await status(() => full.endpoint.list(app.id)),
    manager: await status(() => manager.endpoint.list(app.id)),
  };

  seen.unsupported = await status(() => admin.environment.export());
  // The SDK's own request path, with a method the route does not have.
  const wrong = new SvixRequest(HttpMethod.PATCH, "/api/v1/operational-webhook/endpoint");
  seen.wrong_method = await status(() => wrong.send(admin.requestCtx, (body) => body));
  return seen;
});
