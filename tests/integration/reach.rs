//! Reaching endpoints that need more than HMAC, as a whole: keys set through the JavaScript
//! SDK, and no secret of any of it in a debug-level log.

use crate::testkit::js::run_js;
use crate::testkit::process::TOKEN;
use crate::testkit::{backends, Backend, Role, Stack};
use rstest_reuse::apply;

/// The JavaScript SDK has no `keyType`, but its `secret` and `key` take a `whsk_` key: the
/// script verifies deliveries with Node's crypto, before and during a rotation.
#[apply(backends)]
#[tokio::test]
async fn the_javascript_sdk_signs_with_ed25519_keys(#[case] backend: Backend) {
    let stack = Stack::on(backend, "jsed");
    let hookline = stack.start(Role::Serve).await;
    let base = hookline.api_url.clone().expect("api url");
    let (ok, seen) = run_js(
        "asymmetric.mjs",
        &[("HOOKLINE_URL", base.as_str()), ("HOOKLINE_TOKEN", TOKEN)],
    )
    .await;
    assert!(ok, "asymmetric.mjs failed: {seen}");
    assert_eq!(seen["signatures"], 2, "{seen}");
}
