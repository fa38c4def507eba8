// Every message call of the official Svix JavaScript SDK against Hookline.
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_URL.
import { check, client, run } from "./lib.mjs";
import { checkPage, errorOf, ids, isTime, namesField, same } from "./checks.mjs";

const svix = client();

async function listed(app, options = {}) {
  return ids(checkPage(await svix.message.list(app, { limit: 250, ...options }), "messages"));
}

async function precheck(app, endpoint) {
  const active = async (eventType, channels) =>
    (await svix.message.precheck(app, { eventType, channels })).active;
  check((await active("order.created", ["eu"])) === true, "an endpoint takes order.created on eu");
  check((await active("order.created", ["us"])) === false, "no endpoint listens on us");
  check((await active("order.created")) === false, "the endpoint wants a channel");
  check((await active("order.deleted", ["eu"])) === false, "no endpoint takes order.deleted");
  await svix.endpoint.patch(app, endpoint, { disabled: true });
  check((await active("order.created", ["eu"])) === false, "a disabled endpoint takes nothing");
  await svix.endpoint.patch(app, endpoint, { disabled: false });
  const bad = await errorOf(() => svix.message.precheck(app, { eventType: "bad name" }));
  check(bad.status === 422 && namesField(bad.body, "eventType"), "a bad event type", bad);
}

async function create(app) {
  const deliverAt = new Date(Math.floor(Date.now() / 1000) * 1000 + 3600e3);
  const first = await svix.message.create(app, {
    eventType: "order.created",
    payload: { n: 1 },
    channels: ["eu"],
    tags: ["vip"],
    eventId: "js-evt-1",
  });
  check(first.id.startsWith("msg_") && isTime(first.timestamp), "MessageOut", first);
  // The SDK asks with_content=false and puts the payload it sent back in the answer.
  check(same(first.payload, { n: 1 }), "the SDK's payload", first);
  check(first.eventId === "js-evt-1" && same(first.tags, ["vip"]) && same(first.channels, ["eu"]), "kept", first);
  const second = await svix.message.create(
    app,
    { eventType: "order.updated", payload: { n: 2 }, channels: ["us"] },
    { withContent: false },
  );
  check(same(second.payload, {}), "the server leaves the payload out when asked", second);
  const later = await svix.message.create(app, {
    eventType: "order.created",
    payload: { n: 3 },
    deliverAt,
    payloadRetentionHours: 2,
  });
  check(isTime(later.deliverAt) && later.deliverAt.getTime() === deliverAt.getTime(), "deliverAt", later);
  for (const [messageIn, field] of [
    [{ eventType: "x", payload: {}, transformationsParams: { a: 1 } }, "transformationsParams"],
    [{ eventType: "x", payload: {}, payloadRetentionHours: 1, payloadRetentionPeriod: 1 }, "payloadRetentionHours"],
    [{ eventType: "x", payload: {}, payloadRetentionPeriod: 0 }, "payloadRetentionPeriod"],
  ]) {
    const refused = await errorOf(() => svix.message.create(app, messageIn));
    check(refused.status === 422 && namesField(refused.body, field), `${field} refused`, refused);
  }
  return { first, second, later };
}

run(async () => {
  const app = (await svix.application.create({ name: "Messages" })).id;
  const endpoint = (
    await svix.endpoint.create(app, { url: process.env.RECEIVER_URL, filterTypes: ["order.created"], channels: ["eu"] })
  ).id;
  await precheck(app, endpoint);
  const { first, second, later } = await create(app);

  const got = await svix.message.get(app, first.id);
  check(got.id === first.id && same(got.payload, { n: 1 }), "get shows the payload by default", got);
  const bare = await svix.message.get(app, first.id, { withContent: false });
  check(same(bare.payload, {}), "get withContent: false", bare);
  const byEventId = await svix.message.get(app, "js-evt-1");
  check(byEventId.id === first.id && same(byEventId.tags, ["vip"]), "get by eventId", byEventId);
  check((await svix.message.get(app, later.id)).deliverAt.getTime() === later.deliverAt.getTime(), "deliverAt kept");

  const every = await listed(app);
  check(same(every, [later.id, second.id, first.id]), "newest first", every);
  const rich = await svix.message.list(app, { limit: 250 });
  check(same(rich.data.map((m) => m.payload), [{ n: 3 }, { n: 2 }, { n: 1 }]), "payloads", rich);
  const lean = await svix.message.list(app, { limit: 250, withContent: false });
  check(lean.data.every((m) => same(m.payload, {})), "withContent: false", lean);
  check(same(await listed(app, { channel: "us" }), [second.id]), "channel");
  check(same(await listed(app, { tag: "vip" }), [first.id]), "tag");
  check(same(await listed(app, { eventTypes: ["order.created"] }), [later.id, first.id]), "eventTypes");
  const newestFirst = [later, second, first];
  const after = newestFirst.filter((m) => m.timestamp > first.timestamp).map((m) => m.id);
  check(same(await listed(app, { after: first.timestamp }), after) && !after.includes(first.id), "after");
  const before = newestFirst.filter((m) => m.timestamp < later.timestamp).map((m) => m.id);
  check(same(await listed(app, { before: later.timestamp }), before) && !before.includes(later.id), "before");
  const page = await svix.message.list(app, { limit: 2 });
  const rest = await svix.message.list(app, { limit: 2, iterator: page.iterator });
  const back = await svix.message.list(app, { limit: 2, iterator: rest.prevIterator });
  check(same(ids(page), every.slice(0, 2)) && same(ids(rest), every.slice(2)) && rest.done, "pages");
  check(same(ids(back), ids(page)), "prevIterator reads the first page", back);
  return { app, endpoint, sent: every };
});
