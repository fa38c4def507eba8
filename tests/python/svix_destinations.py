"""Every destination call of the official Svix Python SDK against Hookline.

Hookline serves destinations of type `fifoEndpoint` only: each is an endpoint with ordered
delivery (`fifo: true`), so the endpoint API sees it too, which this script checks over
plain HTTP (the SDK's `EndpointOut` has no `fifo`).

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, and receiver URLs RECEIVER_URL (destination A:
the Rust test checks that the message sent last arrives there with A's custom header,
signed with its rotated secret and, within the grace period, its first one), RECEIVER_B,
RECEIVER_OTHER and RECEIVER_FAIL (answers 500 to everything).
"""

import json
import os
import urllib.request

from svix.api import (
    ApplicationIn,
    DestinationCreateOptions,
    DestinationIn,
    DestinationListOptions,
    DestinationOut,
    DestinationPatch,
    DestinationStatus,
    DestinationStatusIn,
    EndpointIn,
    EndpointSecretRotateIn,
    FifoEndpointConfigIn,
    MessageIn,
    Ordering,
    SinkHttpConfigPatch,
    SqsConfigIn,
)

from sdk_common import check, error_of, ids, is_time, names_field, run, wait_for

KEY_A = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def raw(method, path, body=None):
    """A call to the API outside the SDK, for what its models leave out (`fifo`)."""
    request = urllib.request.Request(
        os.environ["HOOKLINE_URL"] + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {os.environ['HOOKLINE_TOKEN']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request) as response:
        text = response.read()
    return json.loads(text) if text else None


def fifo_config(url, **rest):
    return FifoEndpointConfigIn(url=url, **rest)


def create_a(c, app):
    a = c.destination.create(
        app,
        DestinationIn(
            type="fifoEndpoint",
            uid="py-dest-a",
            event_types=["py.dest"],
            channels=["orders"],
            metadata={"k": "v"},
            config=fifo_config(os.environ["RECEIVER_URL"], headers={"X-Tenant": "acme"}, key=KEY_A),
        ),
    )
    check(isinstance(a, DestinationOut) and a.id.startswith("ep_"), "DestinationOut", a)
    check(a.type == "fifoEndpoint" and a.status == DestinationStatus.ENABLED, "an enabled FIFO", a)
    check(a.batch_size == 1 and a.max_wait_secs == 0, "no batching", a)
    check(a.current_iterator == "" and a.failure_reason is None and a.next_retry_at is None, "an empty line", a)
    check(is_time(a.created_at) and is_time(a.updated_at), "times parse", a)
    check(a.uid == "py-dest-a" and a.metadata == {"k": "v"}, "kept", a)
    check(a.event_types == ["py.dest"] and a.channels == ["orders"], "filters kept", a)
    check(a.config.url == os.environ["RECEIVER_URL"], "config.url", a.config)
    check(a.config.headers.headers == {"x-tenant": "acme"}, "config.headers", a.config)
    check("whsec_" not in a.model_dump_json(), "the key is never shown", a)

    # The destination is an ordered endpoint.
    endpoint = raw("GET", f"/api/v1/app/{app}/endpoint/{a.id}")
    check(endpoint["fifo"] is True and endpoint["url"] == os.environ["RECEIVER_URL"], "an endpoint with fifo", endpoint)
    check(endpoint["uid"] == "py-dest-a" and endpoint["filterTypes"] == ["py.dest"], "the same endpoint", endpoint)
    check(c.endpoint.get_secret(app, a.id).key == KEY_A, "config.key is the endpoint's secret")
    check(c.endpoint.get_headers(app, a.id).headers == {"x-tenant": "acme"}, "config.headers are its headers")
    check(c.destination.get(app, "py-dest-a").id == a.id, "get by uid")
    return a


def create_b(c, app):
    once = DestinationCreateOptions(idempotency_key="py-dest-b")
    made = [
        c.destination.create(
            app,
            DestinationIn(
                type="fifoEndpoint",
                status=DestinationStatusIn.DISABLED,
                config=fifo_config(os.environ["RECEIVER_OTHER"]),
            ),
            once,
        )
        for _ in range(2)
    ]
    b = made[0]
    check(made[1].id == b.id, "a repeated idempotency-key creates one destination", ids_of(made))
    check(b.status == DestinationStatus.DISABLED, "created disabled", b)
    check(b.uid is None and b.event_types is None and b.channels is None, "no filters", b)
    check(raw("GET", f"/api/v1/app/{app}/endpoint/{b.id}")["disabled"] is True, "status is disabled")
    check(c.endpoint.get_secret(app, b.id).key.startswith("whsec_"), "a generated secret")
    return b


def ids_of(items):
    return [item.id for item in items]


def change_b(c, app, b):
    patched = c.destination.patch(
        app,
        b.id,
        DestinationPatch(
            type="fifoEndpoint",
            status=DestinationStatusIn.ENABLED,
            event_types=["py.dest"],
            metadata={"patched": "1"},
            config=SinkHttpConfigPatch(url=os.environ["RECEIVER_B"]),
        ),
    )
    check(patched.status == DestinationStatus.ENABLED and patched.config.url == os.environ["RECEIVER_B"], "patch sets", patched)
    check(patched.event_types == ["py.dest"] and patched.metadata == {"patched": "1"}, "patch sets", patched)
    cleared = c.destination.patch(app, b.id, DestinationPatch(type="fifoEndpoint", event_types=None))
    check(cleared.event_types is None and cleared.config.url == os.environ["RECEIVER_B"], "null clears, the rest stays", cleared)

    upserted = c.destination.upsert(
        app,
        b.id,
        DestinationIn(type="fifoEndpoint", uid="py-dest-b", config=fifo_config(os.environ["RECEIVER_OTHER"], headers={"X-B": "b"})),
    )
    check(upserted.id == b.id and upserted.uid == "py-dest-b", "upsert replaces", upserted)
    check(upserted.metadata == {} and upserted.status == DestinationStatus.ENABLED, "upsert replaces", upserted)
    check(upserted.config.url == os.environ["RECEIVER_OTHER"] and upserted.config.headers.headers == {"x-b": "b"}, "upsert config", upserted)

    fresh = c.destination.upsert(
        app, "py-dest-new", DestinationIn(type="fifoEndpoint", config=fifo_config(os.environ["RECEIVER_OTHER"]))
    )
    check(fresh.uid == "py-dest-new" and fresh.id != b.id, "upsert creates under the path's uid", fresh)
    again = c.destination.upsert(
        app, "py-dest-new", DestinationIn(type="fifoEndpoint", metadata={"n": "2"}, config=fifo_config(os.environ["RECEIVER_OTHER"]))
    )
    check(again.id == fresh.id and again.uid == "py-dest-new" and again.metadata == {"n": "2"}, "a second upsert finds it", again)
    return fresh


def refusals(c, app, a, plain):
    status, body = error_of(
        lambda: c.destination.create(app, DestinationIn(type="pollingEndpoint", config={}))
    )
    check(status == 400 and body["code"] == "not_supported" and "type" in body["detail"], "another type", body)
    status, body = error_of(
        lambda: c.destination.create(
            app, DestinationIn(type="sqs", config=SqsConfigIn(queue_url="https://sqs.example.com/q"))
        )
    )
    check(status == 400 and body["code"] == "not_supported" and "type" in body["detail"], "sqs", body)
    url = os.environ["RECEIVER_OTHER"]
    for field, given in [
        ("batchSize", DestinationIn(type="fifoEndpoint", batch_size=10, config=fifo_config(url))),
        ("maxWaitSecs", DestinationIn(type="fifoEndpoint", max_wait_secs=5, config=fifo_config(url))),
        ("key", DestinationIn(type="fifoEndpoint", config=fifo_config(url, key="not-a-secret"))),
    ]:
        status, body = error_of(lambda: c.destination.create(app, given))
        check(status == 422 and names_field(body, field), f"{field} refused", body)
    status, body = error_of(
        lambda: c.destination.patch(app, a.id, DestinationPatch(type="fifoEndpoint", batch_size=2))
    )
    check(status == 422 and names_field(body, "batchSize"), "batchSize refused on patch", body)

    # An endpoint without ordered delivery is not a destination.
    status, body = error_of(lambda: c.destination.get(app, plain))
    check(status == 404, "a plain endpoint is no destination", body)
    status, body = error_of(lambda: c.destination.rotate_secret(app, plain, EndpointSecretRotateIn()))
    check(status == 404, "nor rotated as one", body)
    status, body = error_of(
        lambda: c.destination.upsert(app, plain, DestinationIn(type="fifoEndpoint", config=fifo_config(url)))
    )
    check(status == 409, "nor replaced by one", body)
    status, body = error_of(lambda: c.destination.transformation.get(app, a.id))
    check(status == 400 and body["code"] == "not_supported", "transformations", body)


def listing(c, app, expected):
    every = ids(c.destination.list(app, DestinationListOptions(limit=250)))
    check(every == sorted(expected, reverse=True), "the ordered endpoints, newest first", (every, expected))
    first = c.destination.list(app, DestinationListOptions(limit=2))
    second = c.destination.list(app, DestinationListOptions(limit=2, iterator=first.iterator))
    back = c.destination.list(app, DestinationListOptions(limit=2, iterator=second.prev_iterator))
    check(ids(first) == every[:2] and ids(second) == every[2:4], "pages", (ids(first), ids(second)))
    check(ids(back) == ids(first), "prev_iterator reads the first page", ids(back))
    ascending = ids(c.destination.list(app, DestinationListOptions(order=Ordering.ASCENDING)))
    check(ascending == every[::-1], "ascending", ascending)


def blocked(c, app):
    """A destination whose receiver always fails: its first message heads the line and
    holds back the second, which the destination shows as `retrying`."""
    d = c.destination.create(
        app,
        DestinationIn(type="fifoEndpoint", event_types=["py.blocked"], config=fifo_config(os.environ["RECEIVER_FAIL"])),
    )
    first = c.message.create(app, MessageIn(event_type="py.blocked", payload={"n": 1})).id
    c.message.create(app, MessageIn(event_type="py.blocked", payload={"n": 2}))
    seen = wait_for(
        "the destination retrying",
        lambda: (lambda got: got if got.status == DestinationStatus.RETRYING else None)(c.destination.get(app, d.id)),
    )
    check(seen.current_iterator == first, "the first message heads the line", seen)
    check(seen.failure_reason is not None and first in seen.failure_reason, "the reason names it", seen)
    check(is_time(seen.next_retry_at), "its next attempt", seen)
    listed = [x for x in c.destination.list(app, DestinationListOptions(limit=250)).data if x.id == d.id]
    check(len(listed) == 1 and listed[0].status == DestinationStatus.RETRYING, "listed as retrying", listed)
    c.destination.delete(app, d.id)


def main(c):
    app = c.application.create(ApplicationIn(name="Destinations")).id
    plain = c.endpoint.create(app, EndpointIn(url=os.environ["RECEIVER_OTHER"], uid="py-plain")).id
    a = create_a(c, app)
    b = create_b(c, app)
    fresh = change_b(c, app, b)

    # An endpoint made with `fifo: true` is a destination; made ordinary, it is one no more.
    made = raw("POST", f"/api/v1/app/{app}/endpoint", {"url": os.environ["RECEIVER_OTHER"], "fifo": True})
    check(made["fifo"] is True, "fifo on create", made)
    check(c.destination.get(app, made["id"]).type == "fifoEndpoint", "a fifo endpoint is a destination")
    listing(c, app, [a.id, b.id, fresh.id, made["id"]])
    every_endpoint = ids(c.endpoint.list(app))
    check(sorted(every_endpoint) == sorted([plain, a.id, b.id, fresh.id, made["id"]]), "all are endpoints", every_endpoint)
    unmade = raw("PATCH", f"/api/v1/app/{app}/endpoint/{made['id']}", {"fifo": False})
    check(unmade["fifo"] is False, "fifo off by patch", unmade)
    status, body = error_of(lambda: c.destination.get(app, made["id"]))
    check(status == 404, "no longer a destination", body)

    refusals(c, app, a, plain)
    blocked(c, app)

    rotated = c.destination.rotate_secret(app, a.id, EndpointSecretRotateIn(grace_period_seconds=3600))
    check(rotated.key.startswith("whsec_") and rotated.key != KEY_A, "a new secret", rotated)
    check(c.endpoint.get_secret(app, a.id).key == rotated.key, "the endpoint's secret rotated")

    c.destination.delete(app, fresh.id)
    for call in [lambda: c.destination.get(app, fresh.id), lambda: c.endpoint.get(app, fresh.id)]:
        status, body = error_of(call)
        check(status == 404, "deleted", body)

    msg = c.message.create(app, MessageIn(event_type="py.dest", payload={"n": 1}, channels=["orders"]))
    return {"app": app, "a": a.id, "old": KEY_A, "new": rotated.key, "msg": msg.id}


run(main)
