// Operational webhook endpoints through the official Svix JavaScript SDK: create, list, get,
// update, secret, headers (and their PATCH, which the SDK does not wrap) and delete, then
// endpoint events to trigger.
//
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN (admin), OP_ALL_URL, OP_FILTERED_URL, OP_OFF_URL
// (receiver paths for the operational endpoints), APP_URL (an app endpoint), NEW_KEY (the
// secret to rotate to). Prints one JSON line of what it made and saw.
import { HttpMethod, SvixRequest } from "svix/dist/request.js";
import { check, client, run } from "./lib.mjs";
import { refusal } from "./checks.mjs";

await run(async () => {
  const env = process.env;
  const admin = client();
  const ops = admin.operationalWebhookEndpoint;
  const every = await ops.create({
    url: env.OP_ALL_URL,
    uid: "js-op-all",
    description: "everything",
    metadata: { team: "ops" },
  });
  const filtered = await ops.create({
    url: env.OP_FILTERED_URL,
    uid: "js-op-filtered",
    filterTypes: ["endpoint.created"],
    rateLimit: 10,
  });
  const off = await ops.create({ url: env.OP_OFF_URL, disabled: true });
  check(every.createdAt instanceof Date, "createdAt parses as a date", every.createdAt);
  const seen = { all: every.id, filtered: filtered.id, off: off.id };
  seen.listed = (await ops.list({ limit: 50 })).data.map((ep) => ep.id).sort();
  seen.got = await ops.get("js-op-filtered");
  seen.updated = await ops.update(filtered.id, {
    url: env.OP_FILTERED_URL,
    description: "only endpoint.created",
    filterTypes: ["endpoint.created"],
    rateLimit: 20,
  });
  await ops.updateHeaders(every.id, { headers: { "x-op-source": "js", "x-drop": "gone" } });
  const patch = new SvixRequest(
    HttpMethod.PATCH,
    "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers",
  );
  patch.setPathParam("endpoint_id", every.id);
  patch.setBody({ headers: { "x-extra": "1", "x-drop": null } });
  await patch.sendNoResponseBody(admin.requestCtx);
  seen.headers = await ops.getHeaders(every.id);
  await ops.rotateSecret(every.id, { key: env.NEW_KEY });
  seen.all_secret = (await ops.getSecret(every.id)).key;
  seen.filtered_secret = (await ops.getSecret(filtered.id)).key;
  const doomed = await ops.create({ url: env.OP_OFF_URL, uid: "js-op-doomed" });
  await ops.delete(doomed.id);
  seen.after_delete = await refusal(() => ops.get(doomed.id));
  seen.app_token = await refusal(async () => {
    const portal = await admin.authentication.appPortalAccess("js-op-trigger", {
      application: { name: "Operational trigger" },
    });
    await client(portal.token).operationalWebhookEndpoint.list();
  });

  // Operational events to receive: one app endpoint created, then deleted.
  const app = await admin.application.get("js-op-trigger");
  const endpoint = await admin.endpoint.create(app.id, { url: env.APP_URL });
  await admin.endpoint.delete(app.id, endpoint.id);
  seen.app = app.id;
  seen.endpoint = endpoint.id;
  return seen;
});
