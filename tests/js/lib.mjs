// What every SDK script shares: a client for the server under test, checks that name what
// went wrong, and the one JSON line the Rust test reads (`run_js`).
import { Svix } from "svix";

export function client(token = process.env.HOOKLINE_TOKEN) {
  // No retries: a failed call must surface as the error the SDK raises, not be hidden.
  return new Svix(token, { serverUrl: process.env.HOOKLINE_URL, retryScheduleInMs: [] });
}

export function check(condition, what, seen) {
  if (!condition) {
    const detail = seen === undefined ? "" : `: saw ${JSON.stringify(seen)}`;
    throw new Error(`${what}${detail}`);
  }
}

// Runs `body` and prints `{"ok": true, ...result}` or `{"ok": false, "error": ...}`; exits
// non-zero on failure. An SDK ApiException carries the status and body the server sent.
export async function run(body) {
  try {
    const result = (await body()) ?? {};
    console.log(JSON.stringify({ ok: true, ...result }));
  } catch (error) {
    const answer = { ok: false, error: String(error?.message ?? error) };
    if (error?.code !== undefined) answer.status = error.code;
    if (error?.body !== undefined) answer.body = error.body;
    if (error?.stack) console.error(error.stack);
    console.log(JSON.stringify(answer));
    process.exitCode = 1;
  }
}
