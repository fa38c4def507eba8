//! The Svix list filters and paging the SDKs send: the message list (`event_types`,
//! `channel`, `tag`, `before`/`after`, `with_content`), the attempt lists (`status`,
//! `status_code_class`, `event_types`, `channel`, `tag`, `endpoint_id`, `before`/`after`,
//! `with_content`, `with_msg`), the attempted-messages list, the app list's endpoint filters,
//! the event type list (`include_archived`, `with_content`), the destination list, and
//! `prevIterator`, which pages back to the earlier page. Each assertion names the filter it
//! checks and fails if that filter is ignored: the setup always holds items the filter must
//! leave out.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::dns::TestDns;
use crate::testkit::{backends, eventually, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

/// Ids of a list page's items, in order.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

/// `msgId` of each attempt of a page.
fn msg_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["msgId"].as_str().expect("msgId").to_owned())
        .collect()
}

/// Creates a message from a full `MessageIn`; answers the `MessageOut`.
async fn create(api: &Api, app: &str, body: Value) -> Value {
    api.post(
        &format!("/api/v1/app/{app}/msg"),
        body,
        StatusCode::ACCEPTED,
    )
    .await
}

/// Percent-encodes an RFC 3339 time for a query string (`+` would read as a space).
fn q(time: &Value) -> String {
    time.as_str()
        .expect("timestamp")
        .replace('+', "%2B")
        .replace(':', "%3A")
}

#[apply(backends)]
#[tokio::test]
async fn message_list_honours_event_types_channel_tag_time_and_with_content(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "msgfilters");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("msg-filters-app").await;
    let first = create(
        &api,
        &app,
        json!({"eventType": "invoice.paid", "payload": {"n": 1}, "channels": ["eu"], "tags": ["vip"]}),
    )
    .await;
    assert_eq!(first["tags"], json!(["vip"]), "tags are returned on create");
    let second = create(
        &api,
        &app,
        json!({"eventType": "customer.created", "payload": {"n": 2}, "channels": ["us"], "tags": ["trial"]}),
    )
    .await;
    let third = create(
        &api,
        &app,
        json!({"eventType": "invoice.paid", "payload": {"n": 3}, "channels": ["us"]}),
    )
    .await;
    let all = [&first, &second, &third];
    let id = |m: &Value| m["id"].as_str().expect("id").to_owned();
    let list = format!("/api/v1/app/{app}/msg");
    let got = api.get(&format!("{list}/{}", id(&first))).await;
    assert_eq!(got["tags"], json!(["vip"]), "tags are stored");

    let by_type = api
        .get(&format!("{list}?event_types=customer.created"))
        .await;
    assert_eq!(ids(&by_type), [id(&second)], "event_types: {by_type}");
    let by_types = api
        .get(&format!("{list}?event_types=customer.created,other.type"))
        .await;
    assert_eq!(
        ids(&by_types),
        [id(&second)],
        "event_types, comma-separated"
    );
    let by_channel = api.get(&format!("{list}?channel=us")).await;
    assert_eq!(
        ids(&by_channel),
        [id(&third), id(&second)],
        "channel: {by_channel}"
    );
    let by_tag = api.get(&format!("{list}?tag=vip")).await;
    assert_eq!(ids(&by_tag), [id(&first)], "tag: {by_tag}");
    assert_eq!(by_tag["data"][0]["tags"], json!(["vip"]), "tags are listed");

    // Strictly after the first message's time: never the first (equal times are excluded).
    let after = api
        .get(&format!("{list}?after={}", q(&first["timestamp"])))
        .await;
    let expected: Vec<String> = all
        .iter()
        .rev()
        .filter(|m| m["timestamp"] != first["timestamp"])
        .map(|m| id(m))
        .collect();
    assert_eq!(ids(&after), expected, "after: {after}");
    let before = api
        .get(&format!("{list}?before={}", q(&third["timestamp"])))
        .await;
    let expected: Vec<String> = all
        .iter()
        .rev()
        .filter(|m| m["timestamp"] != third["timestamp"])
        .map(|m| id(m))
        .collect();
    assert_eq!(ids(&before), expected, "before: {before}");

    let without = api.get(&format!("{list}?with_content=false")).await;
    assert!(
        without["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|m| m["payload"] == json!({})),
        "with_content=false: {without}"
    );
    let with = api.get(&format!("{list}?tag=vip&with_content=true")).await;
    assert_eq!(with["data"][0]["payload"], json!({"n": 1}));

    let (status, body) = api
        .call(Method::GET, &format!("{list}?before=yesterday"), None, &[])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[apply(backends)]
#[tokio::test]
async fn paging_back_with_prev_iterator_returns_the_earlier_page(#[case] backend: Backend) {
    let stack = Stack::on(backend, "prevpage");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("prev-page-app").await;
    let url = receiver.url("prev", Reply::Always(204));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    api.send_many(&app, "invoice.paid", 7).await;

    let list = format!("/api/v1/app/{app}/msg?limit=3");
    let first = api.get(&list).await;
    assert_eq!(ids(&first).len(), 3);
    let second = api
        .get(&format!(
            "{list}&iterator={}",
            first["iterator"].as_str().expect("iterator")
        ))
        .await;
    assert_eq!(ids(&second).len(), 3);
    let prev = second["prevIterator"].as_str().expect("prevIterator");
    let back = api.get(&format!("{list}&iterator={prev}")).await;
    assert_eq!(ids(&back), ids(&first), "prevIterator pages back: {back}");
    let forward = api
        .get(&format!(
            "{list}&iterator={}",
            back["iterator"].as_str().expect("iterator")
        ))
        .await;
    assert_eq!(ids(&forward), ids(&second), "and forward again");

    let log = format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}");
    let attempts = format!("{log}?limit=3");
    eventually("seven attempts", Duration::from_secs(20), || async {
        let page = api.get(&format!("{log}?limit=10")).await;
        (ids(&page).len() >= 7).then_some(())
    })
    .await;
    let first = api.get(&attempts).await;
    let second = api
        .get(&format!(
            "{attempts}&iterator={}",
            first["iterator"].as_str().expect("iterator")
        ))
        .await;
    let prev = second["prevIterator"].as_str().expect("prevIterator");
    let back = api.get(&format!("{attempts}&iterator={prev}")).await;
    assert_eq!(
        ids(&back),
        ids(&first),
        "attempt prevIterator pages back: {back}"
    );

    // The other lists page back the same way: apps (store-paged) and endpoints (in memory).
    for n in 0..4 {
        api.create_app(&format!("prev-page-app-{n}")).await;
        api.create_endpoint(
            &app,
            json!({"url": receiver.url("prev", Reply::Always(204))}),
        )
        .await;
    }
    for list in [
        "/api/v1/app?limit=2".to_owned(),
        format!("/api/v1/app/{app}/endpoint?limit=2"),
    ] {
        let first = api.get(&list).await;
        let iterator = first["iterator"].as_str().expect("iterator");
        let second = api.get(&format!("{list}&iterator={iterator}")).await;
        let prev = second["prevIterator"].as_str().expect("prevIterator");
        let back = api.get(&format!("{list}&iterator={prev}")).await;
        assert_eq!(
            ids(&back),
            ids(&first),
            "{list}: prevIterator pages back: {back}"
        );
    }
}

/// Two endpoints, one failing: messages with channels and tags, and their attempts.
struct AttemptSetup {
    app: String,
    ok: String,
    bad: String,
    paid: Value,
    signup: Value,
}

async fn attempt_setup(api: &Api, receiver: &Receiver) -> AttemptSetup {
    let app = api.create_app("attempt-filters-app").await;
    let ok = api
        .create_endpoint(&app, json!({"url": receiver.url("ok", Reply::Always(200))}))
        .await;
    let bad = api
        .create_endpoint(
            &app,
            json!({"url": receiver.url("bad", Reply::Always(500))}),
        )
        .await;
    let paid = create(
        api,
        &app,
        json!({"eventType": "invoice.paid", "payload": {"n": 1}, "channels": ["eu"], "tags": ["vip"]}),
    )
    .await;
    let signup = create(
        api,
        &app,
        json!({"eventType": "user.signup", "payload": {"n": 2}, "channels": ["us"], "tags": ["trial"]}),
    )
    .await;
    for msg in [&paid, &signup] {
        let msg = msg["id"].as_str().expect("id");
        eventually(
            "an attempt to each endpoint",
            Duration::from_secs(20),
            || async {
                let attempts = api.attempts_of_message(&app, msg).await;
                let to = |ep: &str| attempts.iter().any(|a| a["endpointId"] == ep);
                (to(&ok) && to(&bad)).then_some(())
            },
        )
        .await;
    }
    AttemptSetup {
        app,
        ok,
        bad,
        paid,
        signup,
    }
}

#[apply(backends)]
#[tokio::test]
async fn attempts_by_endpoint_honour_every_filter(#[case] backend: Backend) {
    let stack = Stack::on(backend, "atfilters");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let s = attempt_setup(&api, &receiver).await;
    let (paid, signup) = (
        s.paid["id"].as_str().expect("id").to_owned(),
        s.signup["id"].as_str().expect("id").to_owned(),
    );
    let bad = format!("/api/v1/app/{}/attempt/endpoint/{}", s.app, s.bad);
    let ok = format!("/api/v1/app/{}/attempt/endpoint/{}", s.app, s.ok);

    let only = |page: &Value, msg: &str| {
        msg_ids(page).iter().all(|m| m == msg) && !msg_ids(page).is_empty()
    };
    let by_type = api.get(&format!("{ok}?event_types=user.signup")).await;
    assert!(only(&by_type, &signup), "event_types: {by_type}");
    let by_channel = api.get(&format!("{ok}?channel=eu")).await;
    assert!(only(&by_channel, &paid), "channel: {by_channel}");
    let by_tag = api.get(&format!("{ok}?tag=trial")).await;
    assert!(only(&by_tag, &signup), "tag: {by_tag}");
    let fails = api.get(&format!("{bad}?status=0")).await;
    assert!(
        ids(&fails).is_empty(),
        "status: the failing endpoint has no success: {fails}"
    );
    let class = api.get(&format!("{bad}?status_code_class=200")).await;
    assert!(ids(&class).is_empty(), "status_code_class=200: {class}");
    let class = api.get(&format!("{bad}?status_code_class=500")).await;
    assert!(!ids(&class).is_empty(), "status_code_class=500: {class}");
    let (status, body) = api
        .call(
            Method::GET,
            &format!("{bad}?status_code_class=250"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let all = api.get(&ok).await;
    let times: Vec<Value> = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["timestamp"].clone())
        .collect();
    let (newest, oldest) = (times.first().expect("one"), times.last().expect("one"));
    let after = api.get(&format!("{ok}?after={}", q(oldest))).await;
    assert!(
        after["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|a| a["timestamp"] != *oldest),
        "after: {after}"
    );
    let before = api.get(&format!("{ok}?before={}", q(newest))).await;
    assert!(
        before["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|a| a["timestamp"] != *newest),
        "before: {before}"
    );

    let plain = api.get(&format!("{bad}?limit=1")).await;
    assert!(
        plain["data"][0]["msg"].is_null(),
        "no msg unless asked: {plain}"
    );
    let with_msg = api.get(&format!("{bad}?limit=1&with_msg=true")).await;
    let msg = &with_msg["data"][0]["msg"];
    assert_eq!(
        msg["id"], with_msg["data"][0]["msgId"],
        "with_msg: {with_msg}"
    );
    assert_eq!(
        msg["payload"],
        json!({}),
        "with_msg never carries the payload"
    );
    let full = api.get(&format!("{ok}?limit=1")).await;
    assert_ne!(
        full["data"][0]["response"], "",
        "the receiver answered a body: {full}"
    );
    let bare = api.get(&format!("{ok}?limit=1&with_content=false")).await;
    assert_eq!(
        bare["data"][0]["response"], "",
        "with_content=false: {bare}"
    );
}

#[apply(backends)]
#[tokio::test]
async fn attempts_by_message_and_attempted_messages_honour_their_filters(#[case] backend: Backend) {
    let stack = Stack::on(backend, "msgatfilters");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let s = attempt_setup(&api, &receiver).await;
    let paid = s.paid["id"].as_str().expect("id").to_owned();
    let signup = s.signup["id"].as_str().expect("id").to_owned();
    let by_msg = format!("/api/v1/app/{}/attempt/msg/{paid}", s.app);

    let to_ok = api.get(&format!("{by_msg}?endpoint_id={}", s.ok)).await;
    let endpoints: Vec<&Value> = to_ok["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| &a["endpointId"])
        .collect();
    assert!(
        !endpoints.is_empty() && endpoints.iter().all(|e| **e == json!(s.ok)),
        "endpoint_id: {to_ok}"
    );
    let failed = api.get(&format!("{by_msg}?status=2")).await;
    assert!(
        failed["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|a| a["endpointId"] == json!(s.bad)),
        "status: {failed}"
    );
    let class = api.get(&format!("{by_msg}?status_code_class=200")).await;
    assert!(
        class["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|a| a["responseStatusCode"] == 200),
        "status_code_class: {class}"
    );
    let other_type = api.get(&format!("{by_msg}?event_types=user.signup")).await;
    assert!(ids(&other_type).is_empty(), "event_types: {other_type}");
    let other_channel = api.get(&format!("{by_msg}?channel=us")).await;
    assert!(ids(&other_channel).is_empty(), "channel: {other_channel}");
    let other_tag = api.get(&format!("{by_msg}?tag=trial")).await;
    assert!(ids(&other_tag).is_empty(), "tag: {other_tag}");
    let later = api
        .get(&format!(
            "{by_msg}?after={}",
            q(&json!("2999-01-01T00:00:00Z"))
        ))
        .await;
    assert!(ids(&later).is_empty(), "after: {later}");

    let attempted = format!("/api/v1/app/{}/endpoint/{}/msg", s.app, s.ok);
    let all = api.get(&attempted).await;
    // Newest attempt first: the two deliveries ran concurrently and may have finished in
    // either order, so the expected order is their attempts', not their sends'.
    let attempts = api
        .get(&format!(
            "/api/v1/app/{}/attempt/endpoint/{}?limit=250",
            s.app, s.ok
        ))
        .await;
    let mut newest_first: Vec<String> = Vec::new();
    for attempt in attempts["data"].as_array().expect("data") {
        let msg = attempt["msgId"].as_str().expect("msgId").to_owned();
        if !newest_first.contains(&msg) {
            newest_first.push(msg);
        }
    }
    let mut both = newest_first.clone();
    both.sort();
    let mut sent = vec![signup.clone(), paid.clone()];
    sent.sort();
    assert_eq!(both, sent, "both messages attempted: {attempts}");
    assert_eq!(ids(&all), newest_first, "{all}");
    let by_channel = api.get(&format!("{attempted}?channel=eu")).await;
    assert_eq!(ids(&by_channel), [paid.as_str()], "channel: {by_channel}");
    let by_tag = api.get(&format!("{attempted}?tag=trial")).await;
    assert_eq!(ids(&by_tag), [signup.as_str()], "tag: {by_tag}");
    let by_type = api
        .get(&format!("{attempted}?event_types=invoice.paid"))
        .await;
    assert_eq!(ids(&by_type), [paid.as_str()], "event_types: {by_type}");
    let by_status = api.get(&format!("{attempted}?status=2")).await;
    assert!(
        ids(&by_status).is_empty(),
        "status: nothing failed to this endpoint: {by_status}"
    );
    let before = api
        .get(&format!("{attempted}?before={}", q(&s.signup["timestamp"])))
        .await;
    assert!(!ids(&before).contains(&signup), "before: {before}");
    let bare = api.get(&format!("{attempted}?with_content=false")).await;
    assert_eq!(
        bare["data"][0]["payload"],
        json!({}),
        "with_content=false: {bare}"
    );
}

/// The app list's endpoint filters, the event type list's `include_archived` and
/// `with_content`, `status=4` (canceled: nothing ever is), and the destination list's
/// paging both ways.
#[apply(backends)]
#[tokio::test]
async fn app_event_type_and_destination_lists_honour_their_filters(#[case] backend: Backend) {
    // Every name resolves to loopback, so an endpoint at play.svix.com can be saved offline.
    let dns = TestDns::start(std::net::Ipv4Addr::LOCALHOST).await;
    let stack = Stack::on(backend, "otherfilters")
        .with("HOOKLINE__DELIVERY__DNS_SERVER", &dns.addr.to_string());
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let url = receiver.url("lists", Reply::Always(200));
    let live = api.create_app("live-app").await;
    let empty = api.create_app("empty-app").await;
    let disabled = api.create_app("disabled-app").await;
    let play = api.create_app("play-app").await;
    let first = api.create_endpoint(&live, json!({"url": url})).await;
    let second = api.create_endpoint(&live, json!({"url": url})).await;
    api.create_endpoint(&disabled, json!({"url": url, "disabled": true}))
        .await;
    api.create_endpoint(&play, json!({"url": "https://play.svix.com/in/e_x/"}))
        .await;
    let every = ids(&api.get("/api/v1/app?limit=250").await);
    assert_eq!(every.len(), 4, "{every:?}");
    for (filter, gone) in [
        ("exclude_apps_with_no_endpoints", &empty),
        ("exclude_apps_with_disabled_endpoints", &disabled),
        ("exclude_apps_with_svix_play_endpoints", &play),
    ] {
        let left = ids(&api.get(&format!("/api/v1/app?{filter}=true")).await);
        let expected: Vec<&String> = every.iter().filter(|id| *id != gone).collect();
        assert_eq!(left.iter().collect::<Vec<_>>(), expected, "{filter}");
    }

    let schemas = json!({"1": {"type": "object"}});
    api.post(
        "/api/v1/event-type",
        json!({"name": "a.live", "description": "live", "schemas": schemas}),
        StatusCode::CREATED,
    )
    .await;
    api.post(
        "/api/v1/event-type",
        json!({"name": "b.gone", "description": "archived", "archived": true}),
        StatusCode::CREATED,
    )
    .await;
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let listed = api.get("/api/v1/event-type").await;
    assert_eq!(names(&listed), ["a.live"], "archived left out: {listed}");
    assert_eq!(listed["data"][0]["schemas"], Value::Null, "{listed}");
    let all = api.get("/api/v1/event-type?include_archived=true").await;
    assert_eq!(names(&all), ["a.live", "b.gone"], "include_archived: {all}");
    let full = api.get("/api/v1/event-type?with_content=true").await;
    assert_eq!(full["data"][0]["schemas"], schemas, "with_content: {full}");

    let msg = api.send(&live, "a.live", json!({"n": 1})).await;
    let attempts = format!("/api/v1/app/{live}/attempt/endpoint/{first}");
    eventually("the attempt", Duration::from_secs(20), || async {
        (ids(&api.get(&attempts).await).len() == 1).then_some(())
    })
    .await;
    let canceled = api.get(&format!("{attempts}?status=4")).await;
    assert!(ids(&canceled).is_empty(), "status=4: {canceled}");
    let attempted = format!("/api/v1/app/{live}/endpoint/{first}/msg");
    assert_eq!(ids(&api.get(&attempted).await), [msg.as_str()]);
    let none = api.get(&format!("{attempted}?status=4")).await;
    assert!(ids(&none).is_empty(), "attempted status=4: {none}");
    let (status, body) = api
        .call(Method::GET, &format!("{attempts}?status=5"), None, &[])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let destinations = format!("/api/v1/app/{live}/msg/{msg}/endpoint");
    let both = api.get(&destinations).await;
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids(&both), expected, "newest endpoint first: {both}");
    assert_eq!(both["data"][0]["url"], url.as_str(), "{both}");
    let one = api.get(&format!("{destinations}?limit=1")).await;
    let iterator = one["iterator"].as_str().expect("an iterator");
    let two = api
        .get(&format!("{destinations}?limit=1&iterator={iterator}"))
        .await;
    assert_eq!(ids(&two), expected[1..], "{two}");
    let prev = two["prevIterator"].as_str().expect("a prevIterator");
    let back = api
        .get(&format!("{destinations}?limit=1&iterator={prev}"))
        .await;
    assert_eq!(
        ids(&back),
        ids(&one),
        "prevIterator reads the first page: {back}"
    );
}
