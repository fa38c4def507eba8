//! The lines of ordered endpoints through the `Sequencer` port, on a real database: the
//! reference `Line`'s walk, `deliverAt` places, everything back after reopening (a join even
//! when the process stops dead right after it), a turn racing the leave ahead of it, and
//! deleting an endpoint or an app.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hookline_core::fifo::{Joining, Leaving, LineState, Turn};
use hookline_core::model::{App, DeliveryTask, Endpoint, TriggerType};
use hookline_core::ports::{Registry, Sequencer};
use hookline_embedded::{EmbeddedConfig, EmbeddedStore};
use time::OffsetDateTime;

/// Set by the test that runs [`a_join_is_there_as_soon_as_it_returns`] as a child process:
/// the data dir it joins in and dies.
const DIE_AFTER_JOIN_IN: &str = "HOOKLINE_FIFO_DIE_AFTER_JOIN_IN";

fn config(dir: &Path) -> EmbeddedConfig {
    EmbeddedConfig {
        data_dir: dir.to_owned(),
        main_key: None,
    }
}

fn open(dir: &Path) -> EmbeddedStore {
    hookline_embedded::open(&config(dir)).expect("open").0
}

/// A fixed time, so places and hand-outs are exact.
fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).expect("time")
}

fn task_of(endpoint: &str, msg: &str) -> DeliveryTask {
    DeliveryTask {
        msg_id: msg.into(),
        app_id: "app_1".into(),
        endpoint_id: endpoint.into(),
        attempt: 1,
        trigger: TriggerType::Scheduled,
        event_type: "invoice.paid".into(),
        payload: None,
        traceparent: None,
        rate_slot: false,
        app_slot: false,
        held_since_ms: None,
        endpoint_version: None,
        queued_at_ms: None,
        in_line: true,
    }
}

/// A task with every field set, to see one come back whole.
fn full_task(msg: &str) -> DeliveryTask {
    DeliveryTask {
        attempt: 3,
        payload: serde_json::value::RawValue::from_string(r#"{"n":1}"#.into()).ok(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        held_since_ms: Some(1_234),
        endpoint_version: Some(5_678),
        queued_at_ms: Some(9_012),
        ..task(msg)
    }
}

fn task(msg: &str) -> DeliveryTask {
    task_of("ep_1", msg)
}

fn joining_of(app: &str, endpoint: &str, msg: &str, due: Option<OffsetDateTime>) -> Joining {
    Joining {
        app_id: app.into(),
        endpoint_id: endpoint.into(),
        msg_id: msg.into(),
        due,
    }
}

fn joining(msgs: &[&str]) -> Vec<Joining> {
    msgs.iter()
        .map(|msg| joining_of("app_1", "ep_1", msg, None))
        .collect()
}

fn leaving_of(endpoint: &str, msg: &str) -> Leaving {
    Leaving {
        app_id: "app_1".into(),
        endpoint_id: endpoint.into(),
        msg_id: msg.into(),
    }
}

fn leaving(msg: &str) -> Vec<Leaving> {
    vec![leaving_of("ep_1", msg)]
}

fn ids(tasks: &[DeliveryTask]) -> Vec<&str> {
    tasks.iter().map(|t| t.msg_id.as_str()).collect()
}

async fn state(store: &EmbeddedStore) -> LineState {
    store.line("app_1", "ep_1").await.expect("line")
}

fn line_state(length: u64, head: &str, waiting: u64) -> LineState {
    LineState {
        length,
        head: Some(head.into()),
        waiting,
    }
}

const STALE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn only_the_head_goes_and_each_waiting_task_is_handed_out_once_until_stale() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    store
        .join(&joining(&["m1", "m2", "m3"]), at(0))
        .await
        .expect("join");
    store
        .join(&joining(&["m1"]), at(1))
        .await
        .expect("join again");
    assert_eq!(store.turn(&task("m3")).await.expect("turn"), Turn::Wait);
    assert_eq!(store.turn(&task("m2")).await.expect("turn"), Turn::Wait);
    assert_eq!(store.turn(&task("m1")).await.expect("turn"), Turn::Go);
    assert_eq!(state(&store).await, line_state(3, "m1", 2));

    let handed = store.leave(&leaving("m1"), at(10)).await.expect("leave");
    assert_eq!(ids(&handed), ["m2"]);
    let again = store.leave(&leaving("m1"), at(11)).await.expect("leave");
    assert!(again.is_empty(), "leaving again hands nothing out again");
    let soon = store.stalled(at(12), STALE, 10).await.expect("stalled");
    assert!(soon.is_empty(), "handed out, not stale yet");
    let stale = store.stalled(at(40), STALE, 10).await.expect("stalled");
    assert_eq!(ids(&stale), ["m2"], "stale: handed out again");
    let after = store.stalled(at(41), STALE, 10).await.expect("stalled");
    assert!(after.is_empty(), "and then not again until stale");

    assert_eq!(store.turn(&task("m2")).await.expect("turn"), Turn::Go);
    assert_eq!(state(&store).await, line_state(2, "m2", 1));
    let handed = store.leave(&leaving("m2"), at(50)).await.expect("leave");
    assert_eq!(ids(&handed), ["m3"]);
    assert_eq!(
        store.turn(&task("m1")).await.expect("turn"),
        Turn::Gone,
        "a duplicate of a message that left"
    );
    assert_eq!(store.turn(&task("m3")).await.expect("turn"), Turn::Go);
    assert!(store
        .leave(&leaving("m3"), at(60))
        .await
        .expect("leave")
        .is_empty());
    assert_eq!(state(&store).await, LineState::default());
    assert!(store
        .stalled(at(1_000), STALE, 10)
        .await
        .expect("stalled")
        .is_empty());
    assert_eq!(store.turn(&task("m3")).await.expect("turn"), Turn::Gone);
}

#[tokio::test]
async fn stalled_hands_out_at_most_limit_tasks_across_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let endpoints = ["ep_a", "ep_b", "ep_c"];
    for endpoint in endpoints {
        let line = [
            joining_of("app_1", endpoint, "head", None),
            joining_of("app_1", endpoint, "next", None),
        ];
        store.join(&line, at(0)).await.expect("join");
        let next = task_of(endpoint, "next");
        assert_eq!(store.turn(&next).await.expect("turn"), Turn::Wait);
    }
    // The heads are taken out without handing their successors (a crash in between).
    let heads: Vec<Leaving> = endpoints.iter().map(|e| leaving_of(e, "head")).collect();
    let handed = store.leave(&heads, at(1)).await.expect("leave");
    assert_eq!(ids(&handed), ["next", "next", "next"], "one per line");
    let first = store.stalled(at(100), STALE, 2).await.expect("stalled");
    assert_eq!(first.len(), 2, "at most the limit");
    let rest = store.stalled(at(100), STALE, 2).await.expect("stalled");
    assert_eq!(rest.len(), 1, "the others were handed at 100 already");
    let mut all: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|t| t.endpoint_id.clone())
        .collect();
    all.sort();
    assert_eq!(all, endpoints, "each line's head once");
}

#[tokio::test]
async fn a_scheduled_message_takes_its_place_at_its_due_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let tomorrow = at(86_400);
    let line = [
        joining_of("app_1", "ep_1", "early", None),
        joining_of("app_1", "ep_1", "tomorrow", Some(tomorrow)),
        joining_of("app_1", "ep_1", "later", None),
    ];
    store.join(&line, at(0)).await.expect("join");
    assert_eq!(state(&store).await, line_state(3, "early", 0));
    store.leave(&leaving("early"), at(1)).await.expect("leave");
    assert_eq!(
        state(&store).await,
        line_state(2, "later", 0),
        "the scheduled one is not due yet"
    );
    // Its due time passed: the scheduler queued it, and it is next.
    store.leave(&leaving("later"), at(2)).await.expect("leave");
    assert_eq!(state(&store).await, line_state(1, "tomorrow", 0));
    // A message accepted after the due time goes behind it; one due before it, ahead.
    store
        .join(&joining(&["after"]), at(90_000))
        .await
        .expect("join");
    let sooner = [joining_of("app_1", "ep_1", "sooner", Some(at(80_000)))];
    store.join(&sooner, at(3)).await.expect("join");
    assert_eq!(state(&store).await, line_state(3, "sooner", 0));
    store.leave(&leaving("sooner"), at(4)).await.expect("leave");
    assert_eq!(state(&store).await, line_state(2, "tomorrow", 0));
    assert_eq!(store.turn(&task("after")).await.expect("turn"), Turn::Wait);
    let handed = store
        .leave(&leaving("tomorrow"), at(5))
        .await
        .expect("leave");
    assert_eq!(ids(&handed), ["after"]);
}

#[tokio::test]
async fn lines_places_and_waiting_tasks_are_back_after_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let store = open(dir.path());
        store
            .join(&joining(&["m1", "m2", "m3"]), at(100))
            .await
            .expect("join");
        assert_eq!(store.turn(&task("m3")).await.expect("turn"), Turn::Wait);
        assert_eq!(
            store.turn(&full_task("m2")).await.expect("turn"),
            Turn::Wait
        );
        let handed = store.leave(&leaving("m1"), at(110)).await.expect("leave");
        assert_eq!(ids(&handed), ["m2"]);
        // The process stops before the task handed out is queued.
    }
    let store = open(dir.path());
    assert_eq!(state(&store).await, line_state(2, "m2", 2));
    let soon = store.stalled(at(111), STALE, 10).await.expect("stalled");
    assert!(soon.is_empty(), "it remembers when m2 was handed out");
    let stale = store.stalled(at(140), STALE, 10).await.expect("stalled");
    assert_eq!(ids(&stale), ["m2"]);
    assert_eq!(
        serde_json::to_value(&stale[0]).expect("json"),
        serde_json::to_value(full_task("m2")).expect("json"),
        "the task comes back whole"
    );
    // The clock went back: a message joining now still goes last (the line's last place
    // was read back too).
    store.join(&joining(&["m4"]), at(0)).await.expect("join");
    assert_eq!(store.turn(&task("m4")).await.expect("turn"), Turn::Wait);
    assert_eq!(store.turn(&task("m2")).await.expect("turn"), Turn::Go);
    let handed = store.leave(&leaving("m2"), at(150)).await.expect("leave");
    assert_eq!(ids(&handed), ["m3"]);
    let handed = store.leave(&leaving("m3"), at(151)).await.expect("leave");
    assert_eq!(ids(&handed), ["m4"]);
}

/// Run alone, an ordinary join. Run by
/// [`a_join_survives_the_process_stopping_right_after_it`] as a child process, it joins in
/// that test's data dir and ends the process the moment the join returns: no destructor
/// runs, so nothing but the join's own commit can have made it durable.
#[tokio::test]
async fn a_join_is_there_as_soon_as_it_returns() {
    let own = tempfile::tempdir().expect("temp dir");
    let given = std::env::var_os(DIE_AFTER_JOIN_IN).map(PathBuf::from);
    let store = open(given.as_deref().unwrap_or(own.path()));
    let line = [
        joining_of("app_1", "ep_1", "m1", None),
        joining_of("app_1", "ep_1", "m2", Some(at(3_000))),
    ];
    store.join(&line, at(0)).await.expect("join");
    if given.is_some() {
        std::process::exit(0);
    }
    assert_eq!(state(&store).await, line_state(2, "m1", 0));
}

#[test]
fn a_join_survives_the_process_stopping_right_after_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let test = std::env::current_exe().expect("this test binary");
    let status = Command::new(test)
        .args(["--exact", "a_join_is_there_as_soon_as_it_returns"])
        .env(DIE_AFTER_JOIN_IN, dir.path())
        .status()
        .expect("run the child");
    assert!(status.success(), "the child joined: {status}");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = open(dir.path());
        assert_eq!(state(&store).await, line_state(2, "m1", 0));
        let handed = store.leave(&leaving("m1"), at(1)).await.expect("leave");
        assert!(handed.is_empty());
        assert_eq!(state(&store).await, line_state(1, "m2", 0));
    });
}

/// A turn of B racing the leave of A, the message ahead of it: B either goes, or waits and
/// is handed out by that leave; never stranded waiting, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_racing_the_leave_ahead_of_it_is_never_stranded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    let (mut went, mut handed_out) = (0, 0);
    for round in 0..200 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        store
            .join(&joining(&[&a, &b]), at(round))
            .await
            .expect("join");
        assert_eq!(store.turn(&task(&a)).await.expect("turn"), Turn::Go);
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let turn = tokio::spawn({
            let (store, start, b) = (store.clone(), Arc::clone(&start), task(&b));
            async move {
                start.wait().await;
                store.turn(&b).await
            }
        });
        let leave = tokio::spawn({
            let (store, start, a) = (store.clone(), start, leaving(&a));
            async move {
                start.wait().await;
                store.leave(&a, at(round)).await
            }
        });
        let turn = turn.await.expect("turn task").expect("turn");
        let handed = leave.await.expect("leave task").expect("leave");
        match (turn, ids(&handed).as_slice()) {
            (Turn::Go, []) => went += 1,
            (Turn::Wait, [only]) if *only == b => handed_out += 1,
            other => panic!("round {round}: {other:?}"),
        }
        // Whichever way it went, B heads with no waiting copy left to hand out again.
        if turn == Turn::Wait {
            assert_eq!(store.turn(&task(&b)).await.expect("turn"), Turn::Go);
        }
        assert_eq!(state(&store).await, line_state(1, &b, 0), "round {round}");
        let stalled = store.stalled(at(round + 1_000), STALE, 10).await;
        assert!(stalled.expect("stalled").is_empty(), "round {round}");
        store.leave(&leaving(&b), at(round)).await.expect("leave");
    }
    println!("B went itself {went} times, was handed out by the leave {handed_out} times");
}

fn app(id: &str) -> App {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "uid": null,
        "name": id,
        "metadata": {},
        "rateLimit": null,
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }))
    .expect("app")
}

fn endpoint(app: &str, id: &str) -> Endpoint {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "appId": app,
        "uid": null,
        "url": "https://example.com/hook",
        "description": "",
        "eventTypes": null,
        "channels": null,
        "disabled": false,
        "metadata": {},
        "rateLimit": null,
        "fifo": true,
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }))
    .expect("endpoint")
}

/// A line of `app`'s `ep` whose head waits, handed out at 0 (stale by 1,000).
async fn fill(store: &EmbeddedStore, app: &str, ep: &str) {
    let line = [
        joining_of(app, ep, "m1", None),
        joining_of(app, ep, "m2", None),
    ];
    store.join(&line, at(0)).await.expect("join");
    let mut waiting = task_of(ep, "m2");
    waiting.app_id = app.into();
    assert_eq!(store.turn(&waiting).await.expect("turn"), Turn::Wait);
    let mut head = leaving_of(ep, "m1");
    head.app_id = app.into();
    let handed = store.leave(&[head], at(0)).await.expect("leave");
    assert_eq!(ids(&handed), ["m2"]);
    let filled = line_state(1, "m2", 1);
    assert_eq!(store.line(app, ep).await.expect("line"), filled);
}

#[tokio::test]
async fn deleting_an_endpoint_or_its_app_removes_their_lines() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines = [
        ("app_1", "ep_1"),
        ("app_1", "ep_2"),
        ("app_1", "ep_3"),
        ("app_2", "ep_1"),
    ];
    {
        let store = open(dir.path());
        store.create_app(&app("app_1")).await.expect("app");
        for (app, ep) in lines {
            store
                .create_endpoint(&endpoint(app, ep), 10)
                .await
                .expect("endpoint");
            fill(&store, app, ep).await;
        }
        store
            .delete_endpoint(&endpoint("app_1", "ep_1"))
            .await
            .expect("delete");
        assert_eq!(state(&store).await, LineState::default());
        assert_eq!(store.turn(&task("m2")).await.expect("turn"), Turn::Gone);
        assert!(store
            .leave(&leaving("m2"), at(1))
            .await
            .expect("leave")
            .is_empty());
        store.remove_line("app_1", "ep_2").await.expect("remove");
        let ep_2 = store.line("app_1", "ep_2").await.expect("line");
        assert_eq!(ep_2, LineState::default());
    }
    let store = open(dir.path());
    for (app, ep) in &lines[..2] {
        let line = store.line(app, ep).await.expect("line");
        assert_eq!(line, LineState::default(), "{app} {ep} stays removed");
    }
    store.delete_app(&app("app_1")).await.expect("delete app");
    let ep_3 = store.line("app_1", "ep_3").await.expect("line");
    assert_eq!(ep_3, LineState::default(), "the app's lines went with it");
    let other = store.line("app_2", "ep_1").await.expect("line");
    assert_eq!(other, line_state(1, "m2", 1), "another app's line stays");
    // Nothing of the removed lines is handed out, now or after reopening.
    let handed = store.stalled(at(1_000), STALE, 10).await.expect("stalled");
    assert_eq!(ids(&handed), ["m2"]);
    assert_eq!(handed[0].app_id, "app_2");
    drop(store);
    let store = open(dir.path());
    assert_eq!(
        store.line("app_1", "ep_3").await.expect("line"),
        LineState::default()
    );
    assert_eq!(
        store.line("app_2", "ep_1").await.expect("line"),
        line_state(1, "m2", 1)
    );
}
