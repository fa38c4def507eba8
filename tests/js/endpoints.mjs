// Every endpoint call of the official Svix JavaScript SDK against Hookline.
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN, and receiver URLs RECEIVER_A and RECEIVER_B
// (checked by the Rust test: A's custom headers and both of its secrets during the grace
// period; B's patched headers and only its new secret) and RECEIVER_OTHER.
import { Ordering } from "svix";

import { check, client, run } from "./lib.mjs";
import { checkPage, errorOf, ids, isTime, namesField, same, waitFor } from "./checks.mjs";

const svix = client();
const OLD_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_A = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SCHEMAS = { 1: { type: "object", examples: [{ n: 0 }, { n: 1 }] } };
const env = process.env;

async function crud(app) {
  const a = await svix.endpoint.create(app, {
    url: env.RECEIVER_A,
    uid: "js-ep-a",
    description: "A",
    filterTypes: ["js.ep"],
    metadata: { k: "v" },
    rateLimit: 50,
    secret: OLD_A,
    headers: { "X-Tenant": "acme" },
    version: 1,
  });
  check(a.id.startsWith("ep_") && isTime(a.createdAt) && isTime(a.updatedAt), "parsed", a);
  check(a.uid === "js-ep-a" && a.description === "A" && same(a.metadata, { k: "v" }), "kept", a);
  check(same(a.filterTypes, ["js.ep"]) && a.throttleRate === 50 && a.version === 1, "kept", a);
  check(a.disabled === false, "enabled", a);
  const headers = await svix.endpoint.getHeaders(app, a.id);
  check(same(headers.headers, { "x-tenant": "acme" }), "headers from create kept", headers);
  check(Array.isArray(headers.sensitive), "sensitive is a list", headers);
  check((await svix.endpoint.getSecret(app, "js-ep-a")).key === OLD_A, "the given secret");
  const v2 = await errorOf(() => svix.endpoint.create(app, { url: env.RECEIVER_A, version: 2 }));
  check(v2.status === 422 && namesField(v2.body, "version"), "only version 1", v2);

  const b = await svix.endpoint.create(app, {
    url: env.RECEIVER_B,
    uid: "js-ep-b",
    headers: { "X-One": "1", "X-Two": "2" },
  });
  await svix.endpoint.patchHeaders(app, b.id, { headers: { "X-Three": "3" }, deleteHeaders: ["x-ONE"] });
  const patched = (await svix.endpoint.getHeaders(app, b.id)).headers;
  check(same(patched, { "x-two": "2", "x-three": "3" }), "patchHeaders deletes and sets", patched);
  await svix.endpoint.updateHeaders(app, b.id, { headers: { "X-Only": "x" } });
  check(same((await svix.endpoint.getHeaders(app, b.id)).headers, { "x-only": "x" }), "replaced");
  await svix.endpoint.headersPatch(app, b.id, {
    headers: { "X-Two": "2", "X-Three": "3" },
    deleteHeaders: ["x-only"],
  });

  const updated = await svix.endpoint.update(app, b.id, {
    url: env.RECEIVER_B,
    description: "B2",
    filterTypes: ["js.ep"],
  });
  check(updated.description === "B2" && updated.uid == null, "update replaces", updated);
  check(same(updated.filterTypes, ["js.ep"]), "update sets filterTypes", updated);
  check(same((await svix.endpoint.getHeaders(app, b.id)).headers, { "x-two": "2", "x-three": "3" }), "update keeps headers");
  const patchedB = await svix.endpoint.patch(app, b.id, { description: "B3", throttleRate: 9, uid: "js-ep-b" });
  check(patchedB.description === "B3" && patchedB.throttleRate === 9, "patch sets", patchedB);
  check(patchedB.uid === "js-ep-b" && same(patchedB.filterTypes, ["js.ep"]), "patch keeps", patchedB);
  const cleared = await svix.endpoint.patch(app, b.id, { throttleRate: null, channels: null });
  check(cleared.throttleRate == null && cleared.description === "B3", "null clears", cleared);
  const got = await svix.endpoint.get(app, "js-ep-b");
  check(got.id === b.id && got.description === "B3", "get by uid", got);
  return { a, b };
}

async function rotate(app, a, b) {
  await svix.endpoint.rotateSecret(app, a.id, { key: NEW_A, gracePeriodSeconds: 3600 });
  check((await svix.endpoint.getSecret(app, a.id)).key === NEW_A, "the new secret is current");
  const bOld = (await svix.endpoint.getSecret(app, b.id)).key;
  const once = { idempotencyKey: "js-rotate-b" };
  await svix.endpoint.rotateSecret(app, b.id, { gracePeriodSeconds: 0 }, once);
  const bNew = (await svix.endpoint.getSecret(app, b.id)).key;
  await svix.endpoint.rotateSecret(app, b.id, { gracePeriodSeconds: 0 }, once);
  check((await svix.endpoint.getSecret(app, b.id)).key === bNew, "a repeated key rotates once");
  check(bNew.startsWith("whsec_") && bNew !== bOld, "a generated secret", bNew);
  const long = await errorOf(() => svix.endpoint.rotateSecret(app, b.id, { gracePeriodSeconds: 604801 }));
  check(long.status === 422 && namesField(long.body, "gracePeriodSeconds"), "grace bounded", long);
  // A patched secret is in force at once: set it and back.
  const patched = await svix.endpoint.patch(app, b.id, { secret: OLD_A });
  check(patched.id === b.id && (await svix.endpoint.getSecret(app, b.id)).key === OLD_A, "patch secret");
  await svix.endpoint.patch(app, b.id, { secret: bNew });
  return { bOld, bNew };
}

async function stats(app, a, before) {
  await waitFor("A's example delivered", async () => (await svix.endpoint.getStats(app, a.id)).success >= 1);
  const now = await svix.endpoint.getStats(app, a.id);
  check(now.canceled === 0 && now.fail === 0 && now.pending === 0 && now.sending === 0, "stats", now);
  const earlier = await svix.endpoint.getStats(app, a.id, { until: before });
  check(earlier.success === 0, "until leaves out later attempts", earlier);
  const later = await svix.endpoint.getStats(app, a.id, { since: before });
  check(later.success === 1, "since keeps later attempts", later);
  const tooLong = await errorOf(() =>
    svix.endpoint.getStats(app, a.id, { since: new Date(before.getTime() - 40 * 86400e3), until: before }),
  );
  check(tooLong.status === 422 && namesField(tooLong.body, "since"), "at most 28 days", tooLong);
}

run(async () => {
  await svix.eventType.create({ name: "js.ep", description: "Endpoint test", schemas: SCHEMAS });
  const app = (await svix.application.create({ name: "Endpoints" })).id;
  const { a, b } = await crud(app);
  const { bOld, bNew } = await rotate(app, a, b);

  const before = new Date();
  const aMsg = await svix.endpoint.sendExample(app, a.id, { eventType: "js.ep", exampleIndex: 1 });
  check(aMsg.eventType === "js.ep" && same(aMsg.payload, { n: 1 }) && isTime(aMsg.timestamp), "example", aMsg);
  const bMsg = await svix.endpoint.sendExample(app, b.id, { eventType: "js.ep" });
  check(same(bMsg.payload, { n: 0 }), "the first example by default", bMsg);
  const outOfRange = await errorOf(() => svix.endpoint.sendExample(app, a.id, { eventType: "js.ep", exampleIndex: 2 }));
  check(outOfRange.status === 422 && namesField(outOfRange.body, "exampleIndex"), "index", outOfRange);
  await stats(app, a, before);

  for (const call of [
    () => svix.endpoint.transformationGet(app, a.id),
    () => svix.endpoint.patchTransformation(app, a.id, { enabled: true }),
    () => svix.endpoint.transformationPartialUpdate(app, a.id, { code: "x" }),
  ]) {
    const refused = await errorOf(call);
    check(refused.status === 400 && refused.body.code === "not_supported", "transformations", refused);
  }

  const others = [];
  const createOnce = { idempotencyKey: "js-other-endpoint" };
  for (let i = 0; i < 2; i += 1) others.push((await svix.endpoint.create(app, { url: env.RECEIVER_OTHER }, createOnce)).id);
  check(others[0] === others[1], "a repeated idempotency-key creates one endpoint", others);
  others[1] = (await svix.endpoint.create(app, { url: env.RECEIVER_OTHER })).id;
  const every = ids(checkPage(await svix.endpoint.list(app, { limit: 250 }), "endpoints"));
  check(same(every, [a.id, b.id, ...others].sort().reverse()), "newest first", every);
  const first = await svix.endpoint.list(app, { limit: 2 });
  const second = await svix.endpoint.list(app, { limit: 2, iterator: first.iterator });
  const back = await svix.endpoint.list(app, { limit: 2, iterator: second.prevIterator });
  check(same(ids(first), every.slice(0, 2)) && same(ids(second), every.slice(2)), "pages");
  check(same(ids(back), ids(first)), "prevIterator reads the first page", back);
  const ascending = ids(await svix.endpoint.list(app, { order: Ordering.Ascending }));
  check(same(ascending, [...every].reverse()), "ascending", ascending);
  await svix.endpoint.delete(app, others[0]);
  const gone = await errorOf(() => svix.endpoint.get(app, others[0]));
  check(gone.status === 404 && gone.body.code === "not_found", "deleted", gone);
  return {
    app,
    a: { id: a.id, old: OLD_A, new: NEW_A, msg: aMsg.id },
    b: { id: b.id, old: bOld, new: bNew, msg: bMsg.id },
  };
});
