"""Background tasks through the official Svix Python SDK.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, SINCE (RFC 3339), and the ids the Rust test
prepared: RECOVER_APP, RECOVER_ENDPOINT (messages that failed), REPLAY_APP, REPLAY_P
(created disabled, then enabled, filtered to order.created), REPLAY_Q (created after every
message), BULK_APP, BULK_APP_UID, BULK_ENDPOINT. Starts recover, replay-missing (twice),
bulk-replay (three filters), expunge-all-contents and both statistics, follows each with
`background_task.get` until it is no longer running, then pages and filters
`background_task.list`. Prints one JSON line; exits non-zero on any SDK error.
"""

import json
import os
import time
from datetime import datetime, timezone

from svix.api import (
    AppUsageStatsIn,
    BackgroundTaskListOptions,
    BackgroundTaskStatus,
    BackgroundTaskType,
    BulkReplayIn,
    MessageStatus,
    Ordering,
    RecoverIn,
    ReplayIn,
    StatusCodeClass,
    Svix,
    SvixOptions,
)

from sdk_common import exit_with

DEADLINE_SECONDS = 60


def follow(client: Svix, started) -> dict:
    """Polls the task the answer names until it stops running; answers it as JSON."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        task = client.background_task.get(started.id)
        if task.status != BackgroundTaskStatus.RUNNING:
            return {
                "answer": {"id": started.id, "status": str(started.status), "task": str(started.task)},
                "id": task.id,
                "status": str(task.status),
                "task": str(task.task),
                "data": task.data,
            }
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {started.id} still running: {task.data}")
        time.sleep(0.1)


def run_tasks(client: Svix, env: dict, since: datetime) -> dict:
    bulk_app, bulk_endpoint = env["BULK_APP"], env["BULK_ENDPOINT"]
    out = {}
    out["recover"] = follow(
        client,
        client.endpoint.recover(env["RECOVER_APP"], env["RECOVER_ENDPOINT"], RecoverIn(since=since)),
    )
    for name in ("REPLAY_P", "REPLAY_Q"):
        out[name.lower()] = follow(
            client,
            client.endpoint.replay_missing(env["REPLAY_APP"], env[name], ReplayIn(since=since)),
        )
    filters = {
        "bulk_types": BulkReplayIn(
            since=since, event_types=["order.created"], status=MessageStatus.SUCCESS
        ),
        "bulk_tag": BulkReplayIn(since=since, tag="vip", channel="eu"),
        "bulk_5xx": BulkReplayIn(since=since, status_code_class=StatusCodeClass.CODE5XX),
    }
    for name, body in filters.items():
        out[name] = follow(client, client.endpoint.bulk_replay(bulk_app, bulk_endpoint, body))
    out["expunge"] = follow(client, client.message.expunge_all_contents(bulk_app))
    stats = client.statistics.aggregate_app_stats(
        AppUsageStatsIn(
            since=since,
            until=datetime.now(timezone.utc),
            app_ids=[env["RECOVER_APP"], env["BULK_APP_UID"], "app_that_does_not_exist"],
        )
    )
    out["stats_unresolved"] = stats.unresolved_app_ids
    out["stats"] = follow(client, stats)
    out["event_types"] = follow(client, client.statistics.aggregate_event_types())
    return out


def run_lists(client: Svix) -> dict:
    tasks = client.background_task
    first = tasks.list(BackgroundTaskListOptions(limit=3))
    second = tasks.list(BackgroundTaskListOptions(limit=3, iterator=first.iterator))
    back = tasks.list(BackgroundTaskListOptions(limit=3, iterator=second.prev_iterator))
    oldest = tasks.list(BackgroundTaskListOptions(limit=2, order=Ordering.ASCENDING))
    everything = tasks.list(BackgroundTaskListOptions(limit=250))
    bulk = tasks.list(BackgroundTaskListOptions(task=BackgroundTaskType.ENDPOINT_BULK_REPLAY))
    finished = tasks.list(BackgroundTaskListOptions(status=BackgroundTaskStatus.FINISHED, limit=250))
    running = tasks.list(BackgroundTaskListOptions(status=BackgroundTaskStatus.RUNNING))
    ids = lambda page: [t.id for t in page.data]  # noqa: E731
    return {
        "first": ids(first),
        "second": ids(second),
        "back": ids(back),
        "first_done": first.done,
        "oldest": ids(oldest),
        "all": ids(everything),
        "bulk": ids(bulk),
        "bulk_types": sorted({str(t.task) for t in bulk.data}),
        "finished": ids(finished),
        "running": ids(running),
    }


def main() -> int:
    env = os.environ
    client = Svix(
        env["HOOKLINE_TOKEN"],
        SvixOptions(server_url=env["HOOKLINE_URL"], retry_schedule=[]),
    )
    since = datetime.fromisoformat(env["SINCE"].replace("Z", "+00:00"))
    result = run_tasks(client, env, since)
    result["lists"] = run_lists(client)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    exit_with(main)
