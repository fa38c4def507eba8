"""Every endpoint call of the official Svix Python SDK against Hookline.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, and receiver URLs RECEIVER_A and RECEIVER_B
(checked by the Rust test: A's custom headers and both of its secrets during the grace
period; B's patched headers and only its new secret) and RECEIVER_OTHER.
"""

import os
from datetime import datetime, timedelta, timezone

from svix.api import (
    ApplicationIn,
    EndpointGetAttemptStatsOptions,
    EndpointCreateOptions,
    EndpointGetStatsOptions,
    EndpointRotateSecretOptions,
    EndpointHeadersIn,
    EndpointHeadersPatchIn,
    EndpointIn,
    EndpointListOptions,
    EndpointOut,
    EndpointPatch,
    EndpointSecretRotateIn,
    EndpointTransformationPatch,
    EndpointUpsertIn,
    EventExampleIn,
    EventTypeIn,
    Ordering,
)

from sdk_common import check, error_of, ids, is_time, names_field, run, wait_for

OLD_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_A = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
SCHEMAS = {"1": {"type": "object", "examples": [{"n": 0}, {"n": 1}]}}


def crud(c, app):
    a = c.endpoint.create(
        app,
        EndpointIn(
            url=os.environ["RECEIVER_A"],
            uid="py-ep-a",
            description="A",
            event_types=["py.ep"],
            metadata={"k": "v"},
            throttle_rate=50,
            secret=OLD_A,
            headers={"X-Tenant": "acme"},
        ),
    )
    check(isinstance(a, EndpointOut) and a.id.startswith("ep_"), "EndpointOut", a)
    check(is_time(a.created_at) and is_time(a.updated_at), "times parse", a)
    check(a.uid == "py-ep-a" and a.description == "A" and a.metadata == {"k": "v"}, "kept", a)
    check(a.event_types == ["py.ep"] and a.throttle_rate == 50 and a.disabled is False, "kept", a)
    headers = c.endpoint.get_headers(app, a.id)
    check(headers.headers == {"x-tenant": "acme"}, "headers from create are kept", headers)
    check(c.endpoint.get_secret(app, "py-ep-a").key == OLD_A, "the given secret")

    b = c.endpoint.create(
        app,
        EndpointIn(url=os.environ["RECEIVER_B"], uid="py-ep-b", headers={"X-One": "1", "X-Two": "2"}),
    )
    c.endpoint.patch_headers(
        app, b.id, EndpointHeadersPatchIn(headers={"X-Three": "3"}, delete_headers=["x-ONE"])
    )
    patched = c.endpoint.get_headers(app, b.id).headers
    check(patched == {"x-two": "2", "x-three": "3"}, "patch_headers deletes and sets", patched)
    c.endpoint.set_headers(app, b.id, EndpointHeadersIn(headers={"X-Only": "x"}))
    check(c.endpoint.get_headers(app, b.id).headers == {"x-only": "x"}, "set_headers replaces")
    c.endpoint.patch_headers(
        app, b.id, EndpointHeadersPatchIn(headers={"X-Two": "2", "X-Three": "3"}, delete_headers=["x-only"])
    )

    upserted = c.endpoint.upsert(
        app, b.id, EndpointUpsertIn(url=os.environ["RECEIVER_B"], description="B2", event_types=["py.ep"])
    )
    check(upserted.description == "B2" and upserted.uid is None, "upsert replaces", upserted)
    check(upserted.event_types == ["py.ep"], "upsert sets event_types", upserted)
    check(c.endpoint.get_headers(app, b.id).headers == {"x-two": "2", "x-three": "3"}, "upsert keeps headers")
    patched = c.endpoint.patch(app, b.id, EndpointPatch(description="B3", throttle_rate=9, uid="py-ep-b"))
    check(patched.description == "B3" and patched.throttle_rate == 9, "patch sets", patched)
    check(patched.uid == "py-ep-b" and patched.event_types == ["py.ep"], "patch keeps", patched)
    cleared = c.endpoint.patch(app, b.id, EndpointPatch(throttle_rate=None))
    check(cleared.throttle_rate is None and cleared.description == "B3", "patch null clears", cleared)
    got = c.endpoint.get(app, "py-ep-b")
    check(got.id == b.id and got.description == "B3", "get by uid", got)
    return a, b


def rotate(c, app, a, b):
    rotated = c.endpoint.rotate_secret(
        app, a.id, EndpointSecretRotateIn(key=NEW_A, grace_period_seconds=3600)
    )
    check(rotated.key == NEW_A, "rotate_secret answers the new secret", rotated)
    check(c.endpoint.get_secret(app, a.id).key == NEW_A, "the new secret is current")
    b_old = c.endpoint.get_secret(app, b.id).key
    once = EndpointRotateSecretOptions(idempotency_key="py-rotate-b")
    b_new = c.endpoint.rotate_secret(app, b.id, EndpointSecretRotateIn(grace_period_seconds=0), once).key
    repeat = c.endpoint.rotate_secret(app, b.id, EndpointSecretRotateIn(grace_period_seconds=0), once).key
    check(repeat == b_new and c.endpoint.get_secret(app, b.id).key == b_new, "a repeat rotates once", repeat)
    check(b_new.startswith("whsec_") and b_new != b_old, "a generated secret", b_new)
    status, body = error_of(
        lambda: c.endpoint.rotate_secret(app, b.id, EndpointSecretRotateIn(grace_period_seconds=604801))
    )
    check(status == 422 and names_field(body, "gracePeriodSeconds"), "grace bounded", body)
    return b_old, b_new


def stats(c, app, a, before):
    wait_for("A's example delivered", lambda: c.endpoint.get_stats(app, a.id).success >= 1)
    now = c.endpoint.get_stats(app, a.id)
    check(now.canceled == 0 and now.fail == 0 and now.pending == 0, "stats", now)
    earlier = c.endpoint.get_stats(app, a.id, EndpointGetStatsOptions(until=before))
    check(earlier.success == 0, "until leaves out later attempts", earlier)
    later = c.endpoint.get_stats(app, a.id, EndpointGetStatsOptions(since=before))
    check(later.success == 1, "since keeps later attempts", later)
    attempts = c.endpoint.get_attempt_stats(app, a.id)
    check(attempts.success >= 1 and attempts.canceled == 0, "attempt stats", attempts)
    none = c.endpoint.get_attempt_stats(app, a.id, EndpointGetAttemptStatsOptions(until=before))
    check(none.success == 0, "attempt stats until", none)
    status, body = error_of(
        lambda: c.endpoint.get_stats(
            app, a.id, EndpointGetStatsOptions(since=before - timedelta(days=40), until=before)
        )
    )
    check(status == 422 and names_field(body, "since"), "a window of at most 28 days", body)


def main(c):
    c.event_type.create(EventTypeIn(name="py.ep", description="Endpoint test", schemas=SCHEMAS))
    app = c.application.create(ApplicationIn(name="Endpoints")).id
    a, b = crud(c, app)
    b_old, b_new = rotate(c, app, a, b)

    before = datetime.now(timezone.utc)
    a_msg = c.endpoint.send_example(app, a.id, EventExampleIn(event_type="py.ep", example_index=1))
    check(a_msg.event_type == "py.ep" and a_msg.payload == {"n": 1}, "send_example", a_msg)
    b_msg = c.endpoint.send_example(app, b.id, EventExampleIn(event_type="py.ep"))
    check(b_msg.payload == {"n": 0}, "the first example by default", b_msg)
    status, body = error_of(
        lambda: c.endpoint.send_example(app, a.id, EventExampleIn(event_type="py.ep", example_index=2))
    )
    check(status == 422 and names_field(body, "exampleIndex"), "index out of range", body)
    stats(c, app, a, before)

    for call in [
        lambda: c.endpoint.transformation.get(app, a.id),
        lambda: c.endpoint.transformation.patch(app, a.id, EndpointTransformationPatch(enabled=True)),
    ]:
        status, body = error_of(call)
        check(status == 400 and body["code"] == "not_supported", "transformations", body)

    once = EndpointCreateOptions(idempotency_key="py-other-endpoint")
    others = [c.endpoint.create(app, EndpointIn(url=os.environ["RECEIVER_OTHER"]), once).id for _ in range(2)]
    check(others[0] == others[1], "a repeated idempotency-key creates one endpoint", others)
    others[1] = c.endpoint.create(app, EndpointIn(url=os.environ["RECEIVER_OTHER"])).id
    every = ids(c.endpoint.list(app, EndpointListOptions(limit=250)))
    check(every == sorted([a.id, b.id, *others], reverse=True), "newest first", every)
    first = c.endpoint.list(app, EndpointListOptions(limit=2))
    second = c.endpoint.list(app, EndpointListOptions(limit=2, iterator=first.iterator))
    back = c.endpoint.list(app, EndpointListOptions(limit=2, iterator=second.prev_iterator))
    check(ids(first) == every[:2] and ids(second) == every[2:], "pages", (ids(first), ids(second)))
    check(ids(back) == ids(first), "prev_iterator reads the first page", ids(back))
    ascending = ids(c.endpoint.list(app, EndpointListOptions(order=Ordering.ASCENDING)))
    check(ascending == every[::-1], "ascending", ascending)
    c.endpoint.delete(app, others[0])
    status, body = error_of(lambda: c.endpoint.get(app, others[0]))
    check(status == 404 and body["code"] == "not_found", "deleted", body)
    return {
        "app": app,
        "a": {"id": a.id, "old": OLD_A, "new": NEW_A, "msg": a_msg.id},
        "b": {"id": b.id, "old": b_old, "new": b_new, "msg": b_msg.id},
    }


run(main)
