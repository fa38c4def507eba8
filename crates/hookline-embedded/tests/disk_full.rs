//! A full disk, for real: the database on a small tmpfs mounted for the test (the test runs
//! as root). Every caller of a failed commit hears that commit's error, the writer keeps
//! answering afterwards and says why it cannot write (and readiness fails), nothing of a
//! failed batch is stored, and everything acknowledged before is on disk when the database
//! is opened again.

use std::path::Path;
use std::process::Command;

use hookline_core::model::{DeliveryTask, TriggerType};
use hookline_core::ports::{QueueError, RetrySchedule, StoreError, TaskPublisher};
use hookline_embedded::EmbeddedConfig;
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// A tmpfs of a fixed size on a temp dir, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root: {status}");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the full file system room again, keeping its files.
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "remount: {status}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

fn config(dir: &Path) -> EmbeddedConfig {
    EmbeddedConfig {
        data_dir: dir.to_owned(),
        main_key: None,
    }
}

/// A task carrying `bytes` of payload.
fn task(n: u32, bytes: usize) -> DeliveryTask {
    let payload = RawValue::from_string(format!("\"{}\"", "x".repeat(bytes))).expect("json");
    DeliveryTask {
        msg_id: format!("msg_{n}"),
        app_id: "app_1".into(),
        endpoint_id: "ep_1".into(),
        attempt: 1,
        trigger: TriggerType::Scheduled,
        event_type: "order.created".into(),
        payload: Some(payload),
        traceparent: None,
        rate_slot: false,
        app_slot: false,
        held_since_ms: None,
        endpoint_version: None,
        queued_at_ms: None,
        in_line: false,
    }
}

const WRITER_GONE: &str = "the writer has stopped";

#[tokio::test]
async fn a_full_disk_fails_its_callers_with_its_error_and_commits_no_part_of_a_batch() {
    let disk = Tmpfs::mount("4m");
    let (store, queue) = hookline_embedded::open(&config(disk.path())).expect("open");

    // Fill the disk with 64-task batches of 8 KiB tasks until a batch fails.
    let mut acknowledged = 0u64;
    let mut failure = None;
    for batch in 0..64u32 {
        let tasks: Vec<_> = (0..64).map(|n| task(batch * 64 + n, 8 * 1024)).collect();
        match queue.publish(&tasks).await {
            Ok(()) => acknowledged += 64,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let Some(QueueError::Unavailable(message)) = failure else {
        panic!("a 4 MiB disk cannot hold 64 batches of 512 KiB: {failure:?}");
    };
    assert!(
        !message.contains(WRITER_GONE),
        "the failed publish hears the commit's error: {message}"
    );
    assert!(
        message.contains("No space left on device"),
        "the error names the cause: {message}"
    );

    // The writer still answers every caller, and says why it cannot write.
    let now = OffsetDateTime::now_utc();
    let writes = (0..8u32).map(|n| {
        let store = store.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            if n % 2 == 0 {
                store
                    .schedule(&task(10_000 + n, 10), now)
                    .await
                    .map_err(|e| e.to_string())
            } else {
                queue
                    .publish(&[task(10_000 + n, 10)])
                    .await
                    .map_err(|e| e.to_string())
            }
        })
    });
    for write in writes {
        let message = write
            .await
            .expect("write task")
            .expect_err("nothing is written after an I/O error");
        assert!(!message.contains(WRITER_GONE), "{message}");
        assert!(message.contains("is the disk full?"), "{message}");
    }
    match store.schedule(&task(20_000, 10), now).await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("restarted")),
        other => panic!("unexpected: {other:?}"),
    }
    // Readiness says so too, so that an orchestrator restarts the process.
    match store.check().await {
        Err(StoreError::Unavailable(message)) => assert!(message.contains("restarted")),
        other => panic!("a store that takes no writes is not ready: {other:?}"),
    }

    // Opened again with room: exactly the acknowledged batches are there, whole.
    drop((store, queue));
    disk.grow("64m");
    let (store, queue) = hookline_embedded::open(&config(disk.path())).expect("reopen");
    assert!(acknowledged > 0, "some batches fit before the disk filled");
    assert_eq!(queue.depth().await.expect("depth"), acknowledged);
    assert_eq!(store.backlog().await.expect("backlog"), 0);
    queue
        .publish(&[task(30_000, 10)])
        .await
        .expect("writes work again after a restart with room");
}

/// A message accepted in one write that the disk cannot hold: the caller hears the
/// failure, and neither the message, nor its tasks, nor its response is there when the
/// database is opened again with room.
#[tokio::test]
async fn a_full_disk_refuses_an_accepted_message_whole() {
    use hookline_core::model::Message;
    use hookline_core::names::EventTypeName;
    use hookline_core::ports::{AcceptedMessage, MessageStore};

    let disk = Tmpfs::mount("4m");
    let (store, queue) = hookline_embedded::open(&config(disk.path())).expect("open");
    let payload = format!("\"{}\"", "x".repeat(2 * 1024 * 1024));
    let message = Message {
        id: "msg_big".into(),
        app_id: "app_1".into(),
        event_type: EventTypeName::parse("order.created").expect("name"),
        event_id: None,
        channels: None,
        tags: None,
        payload: RawValue::from_string(payload).expect("payload"),
        timestamp: OffsetDateTime::now_utc(),
        deliver_at: None,
    };
    // The payload is in the message and in each task: more than the disk holds.
    let tasks = (0..2)
        .map(|n| DeliveryTask::for_message(&message, &format!("ep_{n}"), 1, TriggerType::Scheduled))
        .collect();
    let item = AcceptedMessage {
        message,
        endpoint_ids: vec!["ep_0".into(), "ep_1".into()],
        retention_secs: 3600,
        tasks,
        keys: vec!["idem:big".into()],
        response: "{\"id\":\"msg_big\"}".into(),
        ttl_secs: 3600,
    };
    match store.accept_and_enqueue(&item).await {
        Err(StoreError::Unavailable(message)) => assert!(
            message.contains("No space left on device"),
            "the error names the cause: {message}"
        ),
        other => panic!("a 4 MiB disk cannot hold 6 MiB: {other:?}"),
    }

    drop((store, queue));
    disk.grow("64m");
    let (store, queue) = hookline_embedded::open(&config(disk.path())).expect("reopen");
    assert!(store
        .get_message("app_1", "msg_big")
        .await
        .expect("read")
        .is_none());
    assert!(store
        .destinations("app_1", "msg_big")
        .await
        .expect("read")
        .is_empty());
    let response = store
        .idempotent_response("app_1", "idem:big")
        .await
        .expect("read");
    assert_eq!(response, None);
    assert_eq!(queue.depth().await.expect("depth"), 0);
    let written = store.accept_and_enqueue(&item).await.expect("room again");
    assert_eq!(written, Some(()));
    assert_eq!(queue.depth().await.expect("depth"), 2);
}
