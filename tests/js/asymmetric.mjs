// Ed25519 (`v1a`) signing through the official Svix JavaScript SDK, verified with Node's own
// crypto: the SDK has no `keyType`, but it sends `secret` and `key`, which take a `whsk_`
// secret key. The script makes its keys, receives on its own HTTP server, and checks every
// delivery's `v1a` entries with the public keys the API answers.
// Environment: HOOKLINE_URL, HOOKLINE_TOKEN.
import { createServer } from "node:http";
import { generateKeyPairSync, createPublicKey, verify } from "node:crypto";

import { check, client, run } from "./lib.mjs";
import { waitFor } from "./checks.mjs";

const svix = client();

/** A fresh key pair as Standard Webhooks writes it: `whsk_` seed and `whpk_` public key. */
function keyPair() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  // PKCS#8 DER of an Ed25519 key ends with the 32-byte seed; SPKI DER with the public key.
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  return { secret: `whsk_${seed.toString("base64")}`, public: `whpk_${raw.toString("base64")}` };
}

/** Node's public key object for a `whpk_` key. */
function publicKeyOf(whpk) {
  const raw = Buffer.from(whpk.slice("whpk_".length), "base64");
  const spkiPrefix = Buffer.from("302a300506032b6570032100", "hex");
  return createPublicKey({ key: Buffer.concat([spkiPrefix, raw]), format: "der", type: "spki" });
}

/** Which of `keys` sign the delivery, by its `v1a` entries. */
function signers(delivery, keys) {
  const signed = Buffer.from(
    `${delivery.headers["webhook-id"]}.${delivery.headers["webhook-timestamp"]}.${delivery.body}`);
  const entries = delivery.headers["webhook-signature"].split(" ")
    .filter((entry) => entry.startsWith("v1a,"))
    .map((entry) => Buffer.from(entry.slice(4), "base64"));
  return keys.filter((key) => entries.some((sig) => verify(null, signed, publicKeyOf(key), sig)));
}

function receiver() {
  const deliveries = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => {
      deliveries.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({
    url: `http://127.0.0.1:${server.address().port}/hook`,
    deliveries,
    close: () => server.close(),
  })));
}

async function sendAndReceive(app, hook, n) {
  const msg = await svix.message.create(app, { eventType: "js.signed", payload: { n } });
  return waitFor(`delivery of ${msg.id}`, () =>
    hook.deliveries.find((d) => d.headers["webhook-id"] === msg.id));
}

run(async () => {
  const hook = await receiver();
  try {
    const first = keyPair();
    const app = (await svix.application.create({ name: "js-ed25519" })).id;
    const ep = await svix.endpoint.create(app, { url: hook.url, secret: first.secret });
    const answered = (await svix.endpoint.getSecret(app, ep.id)).key;
    check(answered === first.public, "getSecret answers the public key", answered);

    const one = await sendAndReceive(app, hook, 1);
    check(same(signers(one, [first.public]), [first.public]), "signed with the key", one.headers);

    const second = keyPair();
    await svix.endpoint.rotateSecret(app, ep.id, { key: second.secret });
    const rotated = (await svix.endpoint.getSecret(app, ep.id)).key;
    check(rotated === second.public, "getSecret answers the new public key", rotated);
    const two = await sendAndReceive(app, hook, 2);
    const both = signers(two, [first.public, second.public]);
    check(both.length === 2, "during the grace period both keys sign", two.headers);
    check(!JSON.stringify(await svix.endpoint.get(app, ep.id)).includes("whsk_"),
      "no answer carries the secret key");
    return { signatures: two.headers["webhook-signature"].split(" ").length };
  } finally {
    hook.close();
  }
});

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}
