// Background tasks through the official Svix JavaScript SDK: the same operations and checks
// as tests/python/svix_background_tasks.py (see there for the environment the Rust test
// prepares), with the JS SDK's models (dates parsed, enums as values).
import {
  BackgroundTaskStatus,
  BackgroundTaskType,
  MessageStatus,
  Ordering,
  StatusCodeClass,
} from "svix";
import { client, check, run } from "./lib.mjs";

const DEADLINE_MS = 60_000;

// Polls the task the answer names until it stops running; answers it as plain JSON.
async function follow(svix, started) {
  check(started.updatedAt instanceof Date && !isNaN(started.updatedAt), "updatedAt parses", started);
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const task = await svix.backgroundTask.get(started.id);
    if (task.status !== BackgroundTaskStatus.Running) {
      check(!isNaN(task.updatedAt), "the task's updatedAt parses", task);
      return {
        answer: { id: started.id, status: started.status, task: started.task },
        id: task.id,
        status: task.status,
        task: task.task,
        data: task.data,
      };
    }
    check(Date.now() < deadline, `task ${started.id} to stop running`, task.data);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function runTasks(svix, env, since) {
  const out = {};
  out.recover = await follow(svix,
    await svix.endpoint.recover(env.RECOVER_APP, env.RECOVER_ENDPOINT, { since }));
  for (const name of ["REPLAY_P", "REPLAY_Q"]) {
    out[name.toLowerCase()] = await follow(svix,
      await svix.endpoint.replayMissing(env.REPLAY_APP, env[name], { since }));
  }
  const filters = {
    bulk_types: { since, eventTypes: ["order.created"], status: MessageStatus.Success },
    bulk_tag: { since, tag: "vip", channel: "eu" },
    bulk_5xx: { since, statusCodeClass: StatusCodeClass.Code5xx },
  };
  for (const [name, body] of Object.entries(filters)) {
    out[name] = await follow(svix, await svix.endpoint.bulkReplay(env.BULK_APP, env.BULK_ENDPOINT, body));
  }
  out.expunge = await follow(svix, await svix.message.expungeAllContents(env.BULK_APP));
  const stats = await svix.statistics.aggregateAppStats({
    since,
    until: new Date(),
    appIds: [env.RECOVER_APP, env.BULK_APP_UID, "app_that_does_not_exist"],
  });
  out.stats_unresolved = stats.unresolvedAppIds;
  out.stats = await follow(svix, stats);
  out.event_types = await follow(svix, await svix.statistics.aggregateEventTypes());
  return out;
}

async function runLists(svix) {
  const tasks = svix.backgroundTask;
  const ids = (page) => page.data.map((t) => t.id);
  const first = await tasks.list({ limit: 3 });
  const second = await tasks.list({ limit: 3, iterator: first.iterator });
  const back = await tasks.list({ limit: 3, iterator: second.prevIterator });
  const oldest = await tasks.list({ limit: 2, order: Ordering.Ascending });
  const everything = await tasks.list({ limit: 250 });
  const bulk = await tasks.list({ task: BackgroundTaskType.EndpointBulkReplay });
  const finished = await tasks.list({ status: BackgroundTaskStatus.Finished, limit: 250 });
  const running = await tasks.list({ status: BackgroundTaskStatus.Running });
  return {
    first: ids(first),
    second: ids(second),
    back: ids(back),
    first_done: first.done,
    oldest: ids(oldest),
    all: ids(everything),
    bulk: ids(bulk),
    bulk_types: [...new Set(bulk.data.map((t) => t.task))].sort(),
    finished: ids(finished),
    running: ids(running),
  };
}

run(async () => {
  const svix = client();
  const since = new Date(process.env.SINCE);
  const result = await runTasks(svix, process.env, since);
  result.lists = await runLists(svix);
  return result;
});
