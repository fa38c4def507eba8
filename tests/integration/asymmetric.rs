//! Ed25519 endpoint keys (Standard Webhooks `v1a`): deliveries carry `v1a,` entries that the
//! `whpk_` public key verifies (checked here with ed25519-dalek over the signed content
//! built by the test, not with Hookline's code), a rotation from HMAC carries a `v1,` and a
//! `v1a,` entry, no API answer ever holds the `whsk_` secret key, the key is sealed at rest,
//! and `hookline listen` verifies with a `whpk_` key. tests/python/svix_ed25519.py checks the
//! same deliveries with Python's `cryptography` through the Svix SDK.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::testkit::listen::Listener;
use crate::testkit::process::TOKEN;
use crate::testkit::python::run_python;
use crate::testkit::receiver::Delivery;
use crate::testkit::{eventually, sdk_backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const MAIN_KEY: &str = "c2VjcmV0LW1haW4ta2V5LWZvci1ob29rbGluZS10c3Q=";
const HMAC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The ed25519 key whose seed is the bytes 0 to 31, as its 32-byte seed, and its public
/// key (from Python's `cryptography`).
const SECRET_KEY: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PUBLIC_KEY: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
/// A part of that key's base64 that any stored or answered form of it would contain.
const SECRET_KEY_TEXT: &str = "AAECAwQFBgcICQoLDA0ODxAREhMU";

fn header(delivery: &Delivery, name: &str) -> String {
    delivery.headers.get(name).cloned().unwrap_or_default()
}

/// `webhook-signature`'s entries.
fn entries(delivery: &Delivery) -> Vec<String> {
    header(delivery, "webhook-signature")
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// Whether one `v1a,` entry of `delivery` is `public`'s signature of its content.
fn verifies_v1a(public: &str, delivery: &Delivery) -> bool {
    let key = STANDARD
        .decode(public.trim_start_matches("whpk_"))
        .expect("public key base64");
    let key = VerifyingKey::from_bytes(&key.try_into().expect("32 bytes")).expect("a key");
    let content = format!(
        "{}.{}.{}",
        delivery.webhook_id(),
        header(delivery, "webhook-timestamp"),
        delivery.body
    );
    entries(delivery).iter().any(|entry| {
        let Some(encoded) = entry.strip_prefix("v1a,") else {
            return false;
        };
        let bytes = STANDARD.decode(encoded).expect("signature base64");
        let signature = Signature::from_slice(&bytes).expect("64 bytes");
        key.verify_strict(content.as_bytes(), &signature).is_ok()
    })
}

fn hmac_entry(secret: &str, delivery: &Delivery) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    let content = format!(
        "{}.{}.{}",
        delivery.webhook_id(),
        header(delivery, "webhook-timestamp"),
        delivery.body
    );
    mac.update(content.as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Fails if an answer holds a secret key: the known one, or any `whsk_` followed by base64
/// (an error message may name the prefix).
fn assert_no_secret_key(what: &str, answer: &Value) {
    let text = answer.to_string();
    let keyed = text.match_indices("whsk_").any(|(at, _)| {
        text[at + 5..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    });
    assert!(
        !keyed && !text.contains(SECRET_KEY_TEXT),
        "{what} answers a secret key: {text}"
    );
}

/// The 422 answer's `loc` for `body`.
async fn refused_naming(api: &Api, method: Method, path: &str, body: Value, field: &str) {
    let (status, answer) = api.call(method, path, Some(&body), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
    let named = answer["detail"].as_array().into_iter().flatten().any(|d| {
        d["loc"]
            .as_array()
            .is_some_and(|loc| loc.contains(&json!(field)))
    });
    assert!(named, "{body} is refused naming {field}: {answer}");
    assert_no_secret_key("a refusal", &answer);
}

async fn delivery_of(receiver: &Receiver, path: &str, msg: &str) -> Delivery {
    eventually("the delivery", Duration::from_secs(20), || async {
        receiver
            .deliveries(path)
            .into_iter()
            .find(|d| d.webhook_id() == msg)
    })
    .await
}

/// Every stored byte of the deployment holds no ed25519 secret key in the clear.
async fn assert_sealed(stack: &Stack, app: &str) {
    let stored = if let Some(dir) = stack.data_dir() {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
            if entry.path().is_file() {
                all.extend(std::fs::read(entry.path()).expect("a data file"));
            }
        }
        String::from_utf8_lossy(&all).into_owned()
    } else {
        let mut redis = stack.redis().await;
        let endpoints: Vec<String> = redis::cmd("HVALS")
            .arg(stack.keys().endpoints(app))
            .query_async(&mut redis)
            .await
            .expect("stored endpoints");
        assert!(!endpoints.is_empty(), "the endpoints are stored");
        endpoints.join("\n")
    };
    assert!(
        !stored.contains("whsk_") && !stored.contains(SECRET_KEY_TEXT),
        "a secret key is stored in the clear"
    );
}

/// Refusals: a `keyType` contradicting the key, an unknown one, `hexBody` beside ed25519
/// (on create, patch, rotation and a destination's PUT).
async fn check_refusals(api: &Api, app: &str, url: &str, ed: &str) {
    let endpoints = format!("/api/v1/app/{app}/endpoint");
    let hex = json!({"type": "hexBody", "header": "X-Sig"});
    for (body, field) in [
        (
            json!({"url": url, "secret": HMAC_SECRET, "keyType": "ed25519"}),
            "keyType",
        ),
        (
            json!({"url": url, "secret": SECRET_KEY, "keyType": "hmac"}),
            "keyType",
        ),
        (json!({"url": url, "keyType": "rsa"}), "keyType"),
        (
            json!({"url": url, "secret": SECRET_KEY, "signatureScheme": hex}),
            "signatureScheme",
        ),
        (
            json!({"url": url, "keyType": "ed25519", "signatureScheme": hex}),
            "signatureScheme",
        ),
        (json!({"url": url, "secret": "whsk_AAAA"}), "secret"),
    ] {
        refused_naming(api, Method::POST, &endpoints, body, field).await;
    }
    let path = format!("{endpoints}/{ed}");
    refused_naming(
        api,
        Method::PATCH,
        &path,
        json!({"signatureScheme": hex}),
        "signatureScheme",
    )
    .await;
    refused_naming(
        api,
        Method::PUT,
        &path,
        json!({"url": url, "signatureScheme": hex}),
        "signatureScheme",
    )
    .await;
    let rotate = format!("{path}/secret/rotate");
    refused_naming(
        api,
        Method::POST,
        &rotate,
        json!({"key": SECRET_KEY, "keyType": "hmac"}),
        "keyType",
    )
    .await;
    // An HMAC endpoint signing hex bodies may not take an ed25519 key in any way.
    let hex_ep = api
        .create_endpoint(app, json!({"url": url, "signatureScheme": hex}))
        .await;
    let hex_path = format!("{endpoints}/{hex_ep}");
    let hex_rotate = format!("{hex_path}/secret/rotate");
    let cases = [
        (
            Method::POST,
            hex_rotate.clone(),
            json!({"keyType": "ed25519"}),
            "keyType",
        ),
        (Method::POST, hex_rotate, json!({"key": SECRET_KEY}), "key"),
        (
            Method::PATCH,
            hex_path,
            json!({"secret": SECRET_KEY}),
            "secret",
        ),
    ];
    for (method, path, body, field) in cases {
        refused_naming(api, method, &path, body, field).await;
    }
}

/// Creating, reading, listing, rotating (with a repeated idempotency key) and destinations:
/// every answer shows the public key and never the secret key; answers the endpoints'
/// public keys `(given, generated, rotated)`.
async fn check_answers(api: &Api, app: &str, [ed, gen, hmac]: [&str; 3], url: &str) -> [String; 3] {
    let endpoints = format!("/api/v1/app/{app}/endpoint");
    for id in [ed, gen] {
        let one = api.get(&format!("{endpoints}/{id}")).await;
        assert_eq!(one["keyType"], "ed25519", "{one}");
        assert_no_secret_key("an endpoint", &one);
    }
    let given = api.endpoint_secret(app, ed).await;
    assert_eq!(given, PUBLIC_KEY, "the given key's public half is answered");
    let generated = api.endpoint_secret(app, gen).await;
    assert!(generated.starts_with("whpk_"), "{generated}");
    let rotate = format!("{endpoints}/{hmac}/secret/rotate");
    let body = json!({"keyType": "ed25519", "gracePeriodSeconds": 3600});
    let headers = [("idempotency-key", "rotate-to-ed25519")];
    let (status, first) = api.call(Method::POST, &rotate, Some(&body), &headers).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, repeat) = api.call(Method::POST, &rotate, Some(&body), &headers).await;
    assert_eq!(status, StatusCode::OK, "{repeat}");
    let rotated = first["key"].as_str().expect("key").to_owned();
    assert!(rotated.starts_with("whpk_"), "{first}");
    assert_eq!(repeat, first, "a repeat answers the same public key");
    assert_eq!(api.endpoint_secret(app, hmac).await, rotated);
    let one = api.get(&format!("{endpoints}/{hmac}")).await;
    assert_eq!(one["keyType"], "ed25519", "{one}");
    let list = api.get(&endpoints).await;
    assert_no_secret_key("the endpoint list", &list);

    // A destination is an endpoint: given an ed25519 key, and rotated.
    let destinations = format!("/api/v1/app/{app}/destination");
    let config = json!({"url": url, "key": SECRET_KEY});
    let made = api
        .post(
            &destinations,
            json!({"type": "fifoEndpoint", "config": config}),
            StatusCode::CREATED,
        )
        .await;
    assert_no_secret_key("a destination", &made);
    let dest = made["id"].as_str().expect("id");
    assert_eq!(api.endpoint_secret(app, dest).await, PUBLIC_KEY);
    let again = api
        .post(
            &format!("{destinations}/{dest}/secret/rotate"),
            json!({"keyType": "ed25519"}),
            StatusCode::OK,
        )
        .await;
    assert!(again["key"]
        .as_str()
        .is_some_and(|k| k.starts_with("whpk_")));
    for answer in [
        api.get(&destinations).await,
        api.get(&format!("{destinations}/{dest}")).await,
        again,
    ] {
        assert_no_secret_key("a destination answer", &answer);
    }
    [given, generated, rotated]
}

/// An endpoint given a `whsk_` key, one whose key Hookline generated (`keyType`), and an HMAC
/// one rotated to ed25519: their deliveries, and what the API answers about them.
#[apply(sdk_backends)]
#[tokio::test]
async fn ed25519_endpoints_sign_v1a_and_never_show_the_secret_key(#[case] backend: Backend) {
    let stack = Stack::on(backend, "ed25519").with("HOOKLINE__AUTH__MAIN_KEY", MAIN_KEY);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("ed25519-app").await;
    let endpoints = format!("/api/v1/app/{app}/endpoint");
    let url = |path: &str| receiver.url(path, Reply::Always(204));
    let body = json!({"url": url("given"), "secret": SECRET_KEY, "keyType": "ed25519"});
    let created = api.post(&endpoints, body, StatusCode::CREATED).await;
    assert_eq!(created["keyType"], "ed25519", "{created}");
    assert_no_secret_key("endpoint create", &created);
    let ed = created["id"].as_str().expect("id").to_owned();
    let gen = api
        .create_endpoint(&app, json!({"url": url("generated"), "keyType": "ed25519"}))
        .await;
    let body = json!({"url": url("rotated"), "secret": HMAC_SECRET});
    let plain = api.post(&endpoints, body, StatusCode::CREATED).await;
    assert_eq!(plain["keyType"], "hmac", "{plain}");
    let hmac = plain["id"].as_str().expect("id").to_owned();
    check_refusals(&api, &app, &url("refused"), &ed).await;
    let ids = [ed.as_str(), gen.as_str(), hmac.as_str()];
    let [given, generated, rotated] = check_answers(&api, &app, ids, &url("destination")).await;
    assert_sealed(&stack, &app).await;

    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    let at_given = delivery_of(&receiver, "given", &msg).await;
    assert_eq!(entries(&at_given).len(), 1, "{:?}", entries(&at_given));
    assert!(entries(&at_given)[0].starts_with("v1a,"));
    assert!(verifies_v1a(&given, &at_given), "the given key verifies");
    assert!(!verifies_v1a(&generated, &at_given), "another key does not");
    let at_generated = delivery_of(&receiver, "generated", &msg).await;
    assert!(verifies_v1a(&generated, &at_generated));
    // Rotated from HMAC with an hour's grace: the new key's v1a, then the old secret's v1.
    let at_rotated = delivery_of(&receiver, "rotated", &msg).await;
    let both = entries(&at_rotated);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both[0].starts_with("v1a,"), "{both:?}");
    assert!(verifies_v1a(&rotated, &at_rotated));
    assert_eq!(both[1], hmac_entry(HMAC_SECRET, &at_rotated));
}

/// `hookline listen --secret whpk_…` verifies a delivery signed by that key's endpoint and
/// rejects one signed by another ed25519 key; it refuses to start with a `whsk_` key.
#[apply(sdk_backends)]
#[tokio::test]
async fn listen_verifies_v1a_with_a_public_key(#[case] backend: Backend) {
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .args(["listen", "--listen", "127.0.0.1:0"])
        .env("HOOKLINE_SECRET", SECRET_KEY)
        .output()
        .await
        .expect("hookline listen");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a whsk_ key is refused: {said}");
    assert!(!said.contains(SECRET_KEY_TEXT), "{said}");

    let stack = Stack::on(backend, "listen-ed25519");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let listen = Listener::start(PUBLIC_KEY).await;
    let app = api.create_app("listen-ed25519").await;
    let url = format!("{}/hooks", listen.address);
    api.create_endpoint(&app, json!({"url": url, "secret": SECRET_KEY}))
        .await;
    // Another ed25519 key: the listener must reject its deliveries.
    api.create_endpoint(
        &app,
        json!({"url": format!("{url}/other"), "keyType": "ed25519"}),
    )
    .await;
    let msg = api.send(&app, "invoice.paid", json!({"invoice": 42})).await;
    eventually(
        "the listener to verify one delivery and reject the other",
        Duration::from_secs(20),
        || {
            let lines = listen.lines();
            let msg = msg.clone();
            async move {
                let verified = lines
                    .iter()
                    .filter(|l| l.starts_with(&format!("verified {msg}")))
                    .count();
                let rejected = lines
                    .iter()
                    .filter(|l| l.starts_with(&format!("REJECTED {msg}")))
                    .count();
                // The rejected delivery is retried: count it once at least.
                (verified == 1 && rejected >= 1).then_some(())
            }
        },
    )
    .await;
    drop(listen);
}

/// tests/python/svix_ed25519.py: an endpoint made with `keyType: "ed25519"`, its public key
/// read through the Svix SDK, each delivery at the script's own receiver verified with
/// Python's `cryptography`, and a rotation with a 3 s grace: both keys verify during it,
/// only the new one after.
#[apply(sdk_backends)]
#[tokio::test]
async fn python_cryptography_verifies_ed25519_deliveries_through_a_rotation(
    #[case] backend: Backend,
) {
    // Read endpoints afresh for every task, so the rotation reaches the dispatcher at once
    // and the short grace period is seen from its start.
    let stack = Stack::on(backend, "pyed25519").with("HOOKLINE__DELIVERY__ENDPOINT_CACHE_MS", "0");
    let hookline = stack.start(Role::Serve).await;
    let base = hookline.api_url.clone().expect("api url");
    let env = [("HOOKLINE_URL", base.as_str()), ("HOOKLINE_TOKEN", TOKEN)];
    let (ok, result) = run_python("svix_ed25519.py", &env, None).await;
    assert!(ok, "svix_ed25519.py failed: {result}");
    assert_eq!(result["ok"], true, "{result}");
    let api = stack.api(&hookline);
    let app = result["app"].as_str().expect("app");
    let endpoint = result["endpoint"].as_str().expect("endpoint");
    assert_eq!(api.endpoint_secret(app, endpoint).await, result["new"]);
}
