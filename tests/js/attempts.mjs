// Every message attempt call of the official Svix JavaScript SDK against Hookline.
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_OK (answers 200), RECEIVER_FAIL
// (answers 500). The Rust test checks the resent message arrives again.
import { MessageAttemptTriggerType, MessageStatus, StatusCodeClass } from "svix";

import { check, client, run } from "./lib.mjs";
import { checkPage, ids, isTime, same, waitFor } from "./checks.mjs";

const svix = client();
const sorted = (list) => [...list].sort();

async function byEndpoint(app, endpoint, options = {}) {
  const page = await svix.messageAttempt.listByEndpoint(app, endpoint, { limit: 250, ...options });
  return checkPage(page, "attempts").data;
}

function checkAttempt(a, what) {
  check(a.id.startsWith("atmpt_") && isTime(a.timestamp) && a.url.startsWith("http"), what, a);
  check(typeof a.status === "number" && typeof a.statusText === "string", what, a);
  check(typeof a.triggerType === "number" && typeof a.responseDurationMs === "number", what, a);
}

async function endpointLists(app, ok, bad, sent) {
  const [first] = sent;
  const okAttempts = await byEndpoint(app, ok);
  okAttempts.forEach((a) => checkAttempt(a, "an attempt parses"));
  check(same(sorted(okAttempts.map((a) => a.msgId)), sorted(sent.map((m) => m.id))), "one each", okAttempts);
  check(okAttempts.every((a) => a.status === MessageStatus.Success && a.statusText === "success"), "ok");
  check(okAttempts.every((a) => a.response.includes("answer 200")), "content by default", okAttempts);
  const lean = await byEndpoint(app, ok, { withContent: false });
  check(lean.every((a) => a.response === ""), "withContent: false", lean);
  const failed = await byEndpoint(app, bad, { status: MessageStatus.Fail });
  check(failed.length >= 3 && failed.every((a) => a.status === MessageStatus.Fail), "status", failed);
  check((await byEndpoint(app, bad, { status: MessageStatus.Success })).length === 0, "no success");
  check((await byEndpoint(app, ok, { status: MessageStatus.Canceled })).length === 0, "no cancel");
  check((await byEndpoint(app, bad, { statusCodeClass: StatusCodeClass.Code5xx })).length === failed.length, "5xx");
  check((await byEndpoint(app, bad, { statusCodeClass: StatusCodeClass.Code2xx })).length === 0, "2xx");
  check(same((await byEndpoint(app, ok, { tag: "vip" })).map((a) => a.msgId), [first.id]), "tag");
  check(same((await byEndpoint(app, ok, { channel: "eu" })).map((a) => a.msgId), [first.id]), "channel");
  const typed = await byEndpoint(app, ok, { eventTypes: ["order.updated"] });
  check(same(typed.map((a) => a.msgId), [sent[2].id]), "eventTypes", typed);
  const withMsg = await byEndpoint(app, ok, { withMsg: true });
  check(withMsg.every((a) => a.msg?.id === a.msgId && isTime(a.msg.timestamp)), "withMsg", withMsg);
  const newest = okAttempts[0];
  check((await byEndpoint(app, ok, { after: newest.timestamp })).every((a) => a.id !== newest.id), "after");
  const before = (await byEndpoint(app, ok, { before: newest.timestamp })).map((a) => a.id);
  check(same(before, okAttempts.filter((a) => a.timestamp < newest.timestamp).map((a) => a.id)), "before");
  const page = await svix.messageAttempt.listByEndpoint(app, ok, { limit: 2 });
  const rest = await svix.messageAttempt.listByEndpoint(app, ok, { limit: 2, iterator: page.iterator });
  const back = await svix.messageAttempt.listByEndpoint(app, ok, { limit: 2, iterator: rest.prevIterator });
  check(same([...ids(page), ...ids(rest)], okAttempts.map((a) => a.id)), "pages");
  check(same(ids(back), ids(page)), "prevIterator reads the first page", back);
}

async function messageLists(app, ok, bad, sent) {
  const [first] = sent;
  const attempts = (await svix.messageAttempt.listByMsg(app, first.id, { limit: 250 })).data;
  check(same(sorted(new Set(attempts.map((a) => a.endpointId))), sorted([ok, bad])), "both", attempts);
  const onlyOk = (await svix.messageAttempt.listByMsg(app, first.id, { endpointId: ok })).data;
  check(same(onlyOk.map((a) => a.endpointId), [ok]), "endpointId", onlyOk);
  const onlyFail = (await svix.messageAttempt.listByMsg(app, first.id, { status: MessageStatus.Fail })).data;
  check(onlyFail.length > 0 && onlyFail.every((a) => a.endpointId === bad), "status", onlyFail);
  const got = await svix.messageAttempt.get(app, first.id, onlyOk[0].id);
  check(got.id === onlyOk[0].id && got.msgId === first.id, "get", got);
  checkAttempt(got, "get parses");

  const messages = (await svix.messageAttempt.listAttemptedMessages(app, ok, { limit: 250 })).data;
  // Newest attempt first: concurrent deliveries may finish in any order, so the order is the
  // attempts', not the sends'.
  const newestFirst = [...new Set((await byEndpoint(app, ok)).map((a) => a.msgId))];
  check(same(sorted(newestFirst), sorted(sent.map((m) => m.id))), "every message attempted", newestFirst);
  check(same(messages.map((m) => m.id), newestFirst), "attempted", messages);
  check(messages.every((m) => m.status === MessageStatus.Success && isTime(m.timestamp)), "state", messages);
  const firstSent = messages.find((m) => m.id === first.id);
  check(same(firstSent.payload, { n: 0 }) && same(firstSent.tags, ["vip"]), "content", firstSent);
  const bare = (await svix.messageAttempt.listAttemptedMessages(app, ok, { withContent: false })).data;
  check(bare.every((m) => same(m.payload, {})), "attempted withContent: false", bare);
  const none = (await svix.messageAttempt.listAttemptedMessages(app, bad, { status: MessageStatus.Success })).data;
  check(none.length === 0, "attempted messages by status", none);
  const page = await svix.messageAttempt.listAttemptedMessages(app, ok, { limit: 2 });
  const rest = await svix.messageAttempt.listAttemptedMessages(app, ok, { limit: 2, iterator: page.iterator });
  const back = await svix.messageAttempt.listAttemptedMessages(app, ok, { limit: 2, iterator: rest.prevIterator });
  check(same([...ids(page), ...ids(rest)], messages.map((m) => m.id)), "attempted pages");
  check(same(ids(back), ids(page)), "attempted prevIterator", back);

  const destinations = (await svix.messageAttempt.listAttemptedDestinations(app, first.id)).data;
  check(same(sorted(destinations.map((d) => d.id)), sorted([ok, bad])), "destinations", destinations);
  for (const d of destinations) {
    check(d.url.startsWith("http") && isTime(d.createdAt) && isTime(d.updatedAt), "endpoint fields", d);
    check(d.version === 1 && typeof d.description === "string", "endpoint fields", d);
    const wanted = d.id === ok ? [MessageStatus.Success] : [MessageStatus.Fail, MessageStatus.Pending];
    check(wanted.includes(d.status), "state", d);
  }
  const one = await svix.messageAttempt.listAttemptedDestinations(app, first.id, { limit: 1 });
  const two = await svix.messageAttempt.listAttemptedDestinations(app, first.id, { limit: 1, iterator: one.iterator });
  const again = await svix.messageAttempt.listAttemptedDestinations(app, first.id, { limit: 1, iterator: two.prevIterator });
  check(ids(one).length === 1 && same([...ids(one), ...ids(two)], destinations.map((d) => d.id)), "pages");
  check(same(ids(again), ids(one)) && two.done, "destinations prevIterator", again);
}

run(async () => {
  const app = (await svix.application.create({ name: "Attempts" })).id;
  const ok = (await svix.endpoint.create(app, { url: process.env.RECEIVER_OK })).id;
  const bad = (await svix.endpoint.create(app, { url: process.env.RECEIVER_FAIL })).id;
  const sent = [];
  sent.push(await svix.message.create(app, { eventType: "order.created", payload: { n: 0 }, channels: ["eu"], tags: ["vip"] }));
  sent.push(await svix.message.create(app, { eventType: "order.created", payload: { n: 1 } }));
  sent.push(await svix.message.create(app, { eventType: "order.updated", payload: { n: 2 } }));
  await waitFor("an attempt of each message to each endpoint", async () =>
    (await byEndpoint(app, ok)).length === 3 &&
    new Set((await byEndpoint(app, bad)).map((a) => a.msgId)).size === 3);
  await endpointLists(app, ok, bad, sent);
  await messageLists(app, ok, bad, sent);

  const resent = await svix.messageAttempt.resend(app, sent[0].id, ok);
  check(same(resent, {}), "resend answers EmptyResponse", resent);
  const manual = await waitFor("the resend's attempt", async () =>
    (await byEndpoint(app, ok)).filter((a) => a.triggerType === MessageAttemptTriggerType.Manual).at(0));
  check(manual.msgId === sent[0].id, "a manual attempt of the resent message", manual);
  return { app, accepting: ok, resent: sent[0].id };
});
