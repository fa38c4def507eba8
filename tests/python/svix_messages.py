"""Every message call of the official Svix Python SDK against Hookline.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_URL.
"""

import os
from datetime import datetime, timedelta, timezone

from svix.api import (
    ApplicationIn,
    EndpointIn,
    EndpointPatch,
    MessageCreateOptions,
    MessageGetOptions,
    MessageIn,
    MessageListOptions,
    MessageOut,
    MessagePrecheckIn,
)

from sdk_common import check, error_of, ids, is_time, names_field, run


def listed(c, app, **options):
    return ids(c.message.list(app, MessageListOptions(limit=250, **options)))


def precheck(c, app, endpoint):
    def active(event_type, channels=None):
        return c.message.precheck(app, MessagePrecheckIn(event_type=event_type, channels=channels)).active

    check(active("order.created", ["eu"]) is True, "an endpoint takes order.created on eu")
    check(active("order.created", ["us"]) is False, "no endpoint listens on us")
    check(active("order.created") is False, "the endpoint wants a channel")
    check(active("order.deleted", ["eu"]) is False, "no endpoint takes order.deleted")
    c.endpoint.patch(app, endpoint, EndpointPatch(disabled=True))
    check(active("order.created", ["eu"]) is False, "a disabled endpoint takes nothing")
    c.endpoint.patch(app, endpoint, EndpointPatch(disabled=False))


def create(c, app):
    deliver_at = (datetime.now(timezone.utc) + timedelta(hours=1)).replace(microsecond=0)
    first = c.message.create(
        app,
        MessageIn(event_type="order.created", payload={"n": 1}, channels=["eu"], tags=["vip"], event_id="py-evt-1"),
    )
    check(isinstance(first, MessageOut) and first.id.startswith("msg_"), "MessageOut", first)
    check(is_time(first.timestamp) and first.payload == {}, "v2 SDKs ask without content", first)
    check(first.event_id == "py-evt-1" and first.tags == ["vip"] and first.channels == ["eu"], "kept", first)
    second = c.message.create(
        app,
        MessageIn(event_type="order.updated", payload={"n": 2}, channels=["us"]),
        MessageCreateOptions(with_content=True),
    )
    check(second.payload == {"n": 2}, "with_content=True shows the payload", second)
    later = c.message.create(
        app,
        MessageIn(event_type="order.created", payload={"n": 3}, deliver_at=deliver_at, payload_retention_hours=2),
    )
    check(later.deliver_at == deliver_at, "deliver_at is returned", later)
    for message_in, field in [
        (MessageIn(event_type="x", payload={}, transformations_params={"a": 1}), "transformationsParams"),
        (MessageIn(event_type="x", payload={}, payload_retention_hours=1, payload_retention_period=1), "payloadRetentionHours"),
        (MessageIn(event_type="x", payload={}, payload_retention_hours=0), "payloadRetentionHours"),
    ]:
        status, body = error_of(lambda: c.message.create(app, message_in))
        check(status == 422 and names_field(body, field), f"{field} refused", body)
    return first, second, later


def main(c):
    app = c.application.create(ApplicationIn(name="Messages")).id
    endpoint = c.endpoint.create(
        app, EndpointIn(url=os.environ["RECEIVER_URL"], event_types=["order.created"], channels=["eu"])
    ).id
    precheck(c, app, endpoint)
    first, second, later = create(c, app)

    got = c.message.get(app, first.id)
    check(got.id == first.id and got.payload == {}, "get without content by default", got)
    full = c.message.get(app, first.id, MessageGetOptions(with_content=True))
    check(full.payload == {"n": 1} and full.tags == ["vip"], "get with_content=True", full)
    by_event_id = c.message.get(app, "py-evt-1", MessageGetOptions(with_content=True))
    check(by_event_id.id == first.id, "get by event_id", by_event_id)
    check(c.message.get(app, later.id).deliver_at == later.deliver_at, "deliver_at is kept")

    every = listed(c, app)
    check(every == [later.id, second.id, first.id], "newest first", every)
    bare = c.message.list(app, MessageListOptions(limit=250))
    check(all(m.payload == {} for m in bare.data), "list without content by default", bare)
    rich = c.message.list(app, MessageListOptions(limit=250, with_content=True))
    check([m.payload for m in rich.data] == [{"n": 3}, {"n": 2}, {"n": 1}], "with_content", rich)
    check(listed(c, app, channel="us") == [second.id], "channel")
    check(listed(c, app, tag="vip") == [first.id], "tag")
    check(listed(c, app, event_types=["order.created"]) == [later.id, first.id], "event_types")
    newest_first = [later, second, first]
    after = [m.id for m in newest_first if m.timestamp > first.timestamp]
    check(listed(c, app, after=first.timestamp) == after and first.id not in after, "after")
    before = [m.id for m in newest_first if m.timestamp < later.timestamp]
    check(listed(c, app, before=later.timestamp) == before and later.id not in before, "before")
    page = c.message.list(app, MessageListOptions(limit=2))
    rest = c.message.list(app, MessageListOptions(limit=2, iterator=page.iterator))
    back = c.message.list(app, MessageListOptions(limit=2, iterator=rest.prev_iterator))
    check(ids(page) == every[:2] and ids(rest) == every[2:] and rest.done, "pages", ids(rest))
    check(ids(back) == ids(page), "prev_iterator reads the first page", ids(back))
    return {"app": app, "endpoint": endpoint, "sent": every}


run(main)
