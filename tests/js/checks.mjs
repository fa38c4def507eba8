// Checks the per-resource SDK scripts share beside lib.mjs: the SDK's errors as values,
// parsed types, list ids and a bounded wait.
import { isDeepStrictEqual } from "node:util";

import { ApiException } from "svix";

import { check } from "./lib.mjs";

// Runs `call`, which must fail with an API error; answers `{status, body}`.
export async function errorOf(call) {
  let result;
  try {
    result = await call();
  } catch (error) {
    if (error instanceof ApiException) return { status: error.code, body: error.body };
    throw error;
  }
  throw new Error(`expected an API error, got ${JSON.stringify(result)}`);
}

// The HTTP status an SDK call was refused with (and the body it carried), or "ok".
export async function refusal(call) {
  try {
    await call();
    return "ok";
  } catch (error) {
    if (!(error instanceof ApiException)) throw error;
    return { status: error.code, body: error.body };
  }
}

// Whether a 422 body's `loc` names `field`.
export function namesField(body, field) {
  return (body?.detail ?? []).some((d) => (d.loc ?? []).includes(field));
}

// A Date the SDK parsed from a real timestamp.
export function isTime(value) {
  return value instanceof Date && !Number.isNaN(value.getTime());
}

// Equal JSON values, whatever the order of object keys.
export const same = (a, b) => isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));

export const ids = (page) => page.data.map((item) => item.id);

// Checks `page` is a list envelope the SDK parsed.
export function checkPage(page, what) {
  check(Array.isArray(page.data) && typeof page.done === "boolean", `${what}: a list`, page);
  return page;
}

// Polls `probe` until it answers something truthy, for at most `seconds`.
export async function waitFor(what, probe, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const found = await probe();
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
