// How deliveries prove themselves to an endpoint: its signing key (an HMAC secret or an
// Ed25519 key pair), its client certificate and trusted CAs, and its OAuth2 client. Only
// what is safe to show is shown: the HMAC secret on request (as Svix does), an Ed25519
// public key, a certificate's description; never a private key, a client secret or a token.

import { get, post, del } from "../api.js";
import { h, mount, badge, facts, output, busy, errorBox } from "../dom.js";
import { when } from "../format.js";

const HIDDEN = "••••••••••••••••";

/** The signing key: reveal (HMAC) or show (Ed25519 public key), rotate, switch kind. */
export function signingSection(base, ep) {
  const ed25519 = ep.keyType === "ed25519";
  const shown = h("code", { id: "secret-value", class: "wrap" }, HIDDEN);
  const out = output("Signing key result");
  const show = async () => {
    const secret = await get(`${base}/secret`);
    shown.textContent = secret.key;
  };
  const reveal = h("button", {
    type: "button",
    "aria-controls": "secret-value",
    onclick: () => busy(reveal, out, async () => {
      if (reveal.dataset.shown) {
        shown.textContent = HIDDEN;
        delete reveal.dataset.shown;
        reveal.textContent = "Reveal";
        return;
      }
      await show();
      reveal.dataset.shown = "1";
      reveal.textContent = "Hide";
    }),
  }, "Reveal");
  const rotateTo = (keyType, label, question) => {
    const button = h("button", {
      type: "button",
      onclick: () => busy(button, out, async () => {
        if (!confirm(question)) return;
        await post(`${base}/secret/rotate`, keyType ? { keyType } : {});
        await show();
        reveal.dataset.shown = "1";
        reveal.textContent = "Hide";
        mount(out, "Rotated. The previous key also signs until its grace period ends.");
      }),
    }, label);
    return button;
  };
  const rotate = rotateTo(null, "Rotate",
    "Rotate the signing key? The current one keeps signing during the grace period.");
  const other = ed25519
    ? rotateTo("hmac", "Switch to HMAC", "Sign with a new HMAC secret (v1)? The Ed25519 key keeps signing during the grace period.")
    : rotateTo("ed25519", "Switch to Ed25519", "Sign with a new Ed25519 key pair (v1a)? Receivers verify with its public key; the current secret keeps signing during the grace period.");
  if (ed25519) {
    // A public key is not a secret: shown at once.
    show().catch((error) => mount(out, errorBox(error)));
  }
  return h("section", { class: "card", id: "signing", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, ed25519 ? "Signing key (Ed25519 public key)" : "Signing secret"),
    h("p", {}, badge(ed25519 ? "Ed25519 · v1a" : "HMAC-SHA256 · v1", "neutral")),
    h("p", {}, shown),
    h("p", { class: "actions" }, ed25519 ? null : reveal, rotate, other),
    out);
}

/** Client certificate, trusted CAs and OAuth2 client, as the API describes them. */
export async function reachSection(base) {
  const section = h("section", { class: "card", id: "reach", "aria-labelledby": "reach-title" });
  const out = output("Connection settings result");
  const draw = async () => {
    const [mtls, oauth] = await Promise.all([
      get(`${base}/mtls`).catch(() => null),
      get(`${base}/oauth`).catch(() => null),
    ]);
    const remove = (path, label, question) => {
      const button = h("button", {
        type: "button",
        onclick: () => busy(button, out, async () => {
          if (!confirm(question)) return;
          await del(`${base}/${path}`);
          await draw();
        }),
      }, label);
      return button;
    };
    mount(section,
      h("h2", { id: "reach-title" }, "Connection and authentication"),
      h("h3", {}, "TLS"),
      mtls ? facts(tlsFacts(mtls)) : h("p", { class: "muted", id: "tls-none" }, "No client certificate; the system's trusted CAs."),
      mtls ? h("p", { class: "actions" }, remove("mtls", "Remove TLS settings", "Remove the client certificate and trusted CAs of this endpoint?")) : null,
      h("h3", {}, "OAuth2"),
      oauth ? facts(oauthFacts(oauth)) : h("p", { class: "muted", id: "oauth-none" }, "No OAuth2 client."),
      oauth ? h("p", { class: "actions" }, remove("oauth", "Remove OAuth2 client", "Stop sending an OAuth2 bearer token to this endpoint?")) : null,
      out);
  };
  try {
    await draw();
  } catch (error) {
    mount(section, h("h2", { id: "reach-title" }, "Connection and authentication"), errorBox(error));
  }
  return section;
}

function tlsFacts(mtls) {
  const identity = mtls.identity;
  const cas = mtls.serverCaCert ? (mtls.serverCaCert.match(/BEGIN CERTIFICATE/g) ?? []).length : 0;
  const trust = cas
    ? `${cas} custom CA certificate${cas === 1 ? "" : "s"}${mtls.trustSystemRoots ? " and the system's CAs" : " only"}`
    : "The system's CAs";
  return [
    ["Client certificate", identity ? h("span", { id: "tls-subject" }, identity.subject) : "None"],
    identity ? ["Issued by", identity.issuer] : null,
    identity ? ["Expires", expiry(identity.notAfter)] : null,
    identity ? ["SHA-256", h("code", { class: "wrap" }, identity.sha256Fingerprint)] : null,
    ["Trusted CAs", h("span", { id: "tls-trust" }, trust)],
  ];
}

function expiry(notAfter) {
  const soon = Date.parse(notAfter) - Date.now() < 30 * 24 * 3600 * 1000;
  return soon ? [when(notAfter), " ", badge("expires soon", "warn")] : when(notAfter);
}

function oauthFacts(oauth) {
  const method = oauth.authMethod === "clientSecretPost" ? "client secret in the body" : "HTTP Basic";
  return [
    ["Token URL", h("code", { id: "oauth-token-url", class: "wrap" }, oauth.tokenUrl)],
    ["Client ID", h("code", {}, oauth.clientId)],
    ["Client secret", oauth.hasClientSecret === false ? "none" : "set (never shown)"],
    ["Authentication", method],
    ["Scopes", oauth.scopes?.length ? oauth.scopes.join(" ") : "none"],
    oauth.extraParams && Object.keys(oauth.extraParams).length
      ? ["Extra parameters", Object.entries(oauth.extraParams).map(([k, v]) => `${k}=${v}`).join(", ")]
      : null,
  ];
}
