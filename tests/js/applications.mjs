// Every application call of the official Svix JavaScript SDK against Hookline.
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_URL (the Rust test points the
// server's DNS at loopback so that play.svix.com resolves).
import { Ordering } from "svix";

import { check, client, run } from "./lib.mjs";
import { checkPage, errorOf, ids, isTime, namesField } from "./checks.mjs";

const svix = client();
const receiver = process.env.RECEIVER_URL;

async function everyApp(options = {}) {
  return ids(checkPage(await svix.application.list({ limit: 250, ...options }), "app list"));
}

run(async () => {
  const alpha = await svix.application.create({
    name: "Alpha",
    uid: "js-alpha",
    metadata: { team: "a" },
    throttleRate: 7,
  });
  check(alpha.id.startsWith("app_") && alpha.uid === "js-alpha", "id and uid", alpha);
  check(isTime(alpha.createdAt) && isTime(alpha.updatedAt), "times parse", alpha);
  check(alpha.metadata.team === "a", "metadata kept", alpha);
  check(alpha.throttleRate === 7 && alpha.rateLimit === 7, "throttleRate (and rateLimit)", alpha);

  const same = await svix.application.getOrCreate({ name: "Other", uid: "js-alpha" });
  check(same.id === alpha.id && same.name === "Alpha", "getOrCreate finds the app", same);
  const beta = await svix.application.getOrCreate({ name: "Beta", uid: "js-beta" });
  check(beta.id !== alpha.id && beta.name === "Beta", "getOrCreate creates", beta);
  const taken = await errorOf(() => svix.application.create({ name: "Dup", uid: "js-alpha" }));
  check(taken.status === 409 && taken.body.code === "conflict", "a taken uid conflicts", taken);
  const both = await errorOf(() =>
    svix.application.create({ name: "Rates", rateLimit: 1, throttleRate: 2 }),
  );
  check(both.status === 422, "two different rates are refused", both);

  const once = { idempotencyKey: "js-apps-once" };
  const firstOnce = await svix.application.create({ name: "Once" }, once);
  const again = await svix.application.create({ name: "Once" }, once);
  check(again.id === firstOnce.id, "a repeated idempotency-key answers the first app", again);
  await svix.application.delete(firstOnce.id);

  check((await svix.application.get("js-alpha")).id === alpha.id, "get by uid");
  const byId = await svix.application.get(alpha.id);
  check(byId.name === "Alpha" && byId.throttleRate === 7, "get by id", byId);

  const updated = await svix.application.update(alpha.id, {
    name: "Alpha 2",
    uid: "js-alpha",
    metadata: { team: "b" },
  });
  check(updated.name === "Alpha 2" && updated.metadata.team === "b", "update sets", updated);
  check(updated.throttleRate == null, "update replaces: no throttleRate", updated);
  const gamma = await svix.application.update("js-gamma", { name: "Gamma" });
  check(gamma.uid === "js-gamma" && gamma.name === "Gamma", "update creates by uid", gamma);

  const patched = await svix.application.patch(alpha.id, { rateLimit: 3, uid: "js-alpha-2" });
  check(patched.throttleRate === 3 && patched.uid === "js-alpha-2", "patch sets", patched);
  check(patched.name === "Alpha 2" && patched.metadata.team === "b", "patch keeps", patched);
  const cleared = await svix.application.patch(alpha.id, { throttleRate: null, uid: null });
  check(cleared.throttleRate == null && cleared.uid == null, "patch null clears", cleared);
  const readBack = await svix.application.get(alpha.id);
  check(readBack.throttleRate == null && readBack.rateLimit == null, "cleared", readBack);

  // A throttle is 1 to 65,535 messages per second; anything else is a 422 naming it.
  for (const bad of [0, 65536]) {
    const refusals = {
      create: () => svix.application.create({ name: "Bad", throttleRate: bad }),
      update: () => svix.application.update(alpha.id, { name: "Alpha 2", throttleRate: bad }),
      patch: () => svix.application.patch(alpha.id, { throttleRate: bad }),
    };
    for (const [call, refused] of Object.entries(refusals)) {
      const error = await errorOf(refused);
      check(
        error.status === 422 && namesField(error.body, "throttleRate"),
        `${call} with throttleRate ${bad} is refused`,
        error,
      );
    }
  }
  const older = await errorOf(() => svix.application.patch(alpha.id, { rateLimit: 0 }));
  check(older.status === 422 && namesField(older.body, "rateLimit"), "rateLimit 0", older);

  // alpha: a live endpoint; beta: none; gamma: only a disabled one; delta: only Svix Play.
  await svix.endpoint.create(alpha.id, { url: receiver });
  await svix.endpoint.create(gamma.id, { url: receiver, disabled: true });
  const delta = await svix.application.create({ name: "Delta" });
  await svix.endpoint.create(delta.id, { url: "https://play.svix.com/in/e_hookline/" });
  const everyone = await everyApp();
  const expected = [alpha.id, beta.id, gamma.id, delta.id].sort().reverse();
  check(JSON.stringify(everyone) === JSON.stringify(expected), "newest first", everyone);
  const without = async (filter, gone) => {
    const left = await everyApp(filter);
    const want = everyone.filter((id) => id !== gone);
    check(JSON.stringify(left) === JSON.stringify(want), JSON.stringify(filter), left);
  };
  await without({ excludeAppsWithNoEndpoints: true }, beta.id);
  await without({ excludeAppsWithDisabledEndpoints: true }, gamma.id);
  await without({ excludeAppsWithSvixPlayEndpoints: true }, delta.id);

  const first = await svix.application.list({ limit: 2 });
  check(JSON.stringify(ids(first)) === JSON.stringify(everyone.slice(0, 2)), "page 1", first);
  check(!first.done && first.iterator, "more after page 1", first);
  const second = await svix.application.list({ limit: 2, iterator: first.iterator });
  check(JSON.stringify(ids(second)) === JSON.stringify(everyone.slice(2)), "page 2", second);
  const back = await svix.application.list({ limit: 2, iterator: second.prevIterator });
  check(JSON.stringify(ids(back)) === JSON.stringify(ids(first)), "prevIterator", back);
  const ascending = await everyApp({ order: Ordering.Ascending });
  check(JSON.stringify(ascending) === JSON.stringify([...everyone].reverse()), "ascending");

  await svix.application.delete(beta.id);
  const gone = await errorOf(() => svix.application.get(beta.id));
  check(gone.status === 404 && gone.body.code === "not_found", "deleted app is gone", gone);
  return { apps: everyone };
});
