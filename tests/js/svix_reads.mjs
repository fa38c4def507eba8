// The reads and lists whose query parameters the JavaScript SDK always sends, and refusals.
//
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN, APP_ID, ENDPOINT_ID, MSG_ID, ATTEMPT_ID,
// EVENT_TYPE (a message of that type already attempted once). The SDK sends
// `with_content=false` on message create and `expanded_statuses=true` on attempt reads; both
// names of the rate and of the event type filter must be read; a field Hookline does not
// support must come back as a 422 naming it.
import { client, run } from "./lib.mjs";

const env = process.env;

async function refusal(call) {
  try {
    await call();
    return null;
  } catch (error) {
    return { status: error.code, loc: (error.body?.detail ?? []).map((d) => d.loc) };
  }
}

await run(async () => {
  const svix = client();
  const [app, endpoint, msg, attempt] = [env.APP_ID, env.ENDPOINT_ID, env.MSG_ID, env.ATTEMPT_ID];
  const created = await svix.message.create(app, { eventType: env.EVENT_TYPE, payload: { k: 1 } });
  const stored = await svix.message.get(app, created.id, { withContent: true });
  const renamed = await svix.application.create({ name: "JS names", rateLimit: 7, throttleRate: 7 });
  const filtered = await svix.endpoint.create(app, {
    url: "https://example.com/js", filterTypes: [env.EVENT_TYPE], rateLimit: 3,
  });
  return {
    createdPayload: created.payload,
    storedPayload: stored.payload,
    appRate: renamed.throttleRate,
    endpointTypes: filtered.filterTypes,
    endpointRate: filtered.throttleRate,
    byMsg: (await svix.messageAttempt.listByMsg(app, msg)).data.map((a) => a.id),
    byEndpoint: (await svix.messageAttempt.listByEndpoint(app, endpoint)).data.map((a) => a.id),
    attempted: (await svix.messageAttempt.listAttemptedMessages(app, endpoint)).data.map((m) => m.id),
    attempt: (await svix.messageAttempt.get(app, msg, attempt)).id,
    refusedVersion: await refusal(() => svix.endpoint.patch(app, endpoint, { version: 2 })),
    refusedRates: await refusal(() =>
      svix.application.create({ name: "JS rates", rateLimit: 1, throttleRate: 2 })),
  };
});
