"""Every message attempt call of the official Svix Python SDK against Hookline.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_OK (answers 200), RECEIVER_FAIL
(answers 500). The Rust test checks the resent message arrives again.
"""

import os

from svix.api import (
    ApplicationIn,
    EndpointIn,
    MessageAttemptListAttemptedDestinationsOptions,
    MessageAttemptListAttemptedMessagesOptions,
    MessageAttemptListByEndpointOptions,
    MessageAttemptListByMsgOptions,
    MessageAttemptOut,
    MessageAttemptTriggerType,
    MessageIn,
    MessageStatus,
    StatusCodeClass,
)

from sdk_common import check, ids, is_time, run, wait_for


def by_endpoint(c, app, endpoint, **options):
    return c.message_attempt.list_by_endpoint(
        app, endpoint, MessageAttemptListByEndpointOptions(limit=250, **options)
    ).data


def check_attempt(a, what):
    check(isinstance(a, MessageAttemptOut) and a.id.startswith("atmpt_"), what, a)
    check(is_time(a.timestamp) and isinstance(a.status, MessageStatus), what, a)
    check(isinstance(a.trigger_type, MessageAttemptTriggerType) and a.url.startswith("http"), what, a)


def endpoint_lists(c, app, ok, bad, sent):
    first = sent[0]
    ok_attempts = by_endpoint(c, app, ok)
    for a in ok_attempts:
        check_attempt(a, "an attempt parses")
    check(sorted(a.msg_id for a in ok_attempts) == sorted(m.id for m in sent), "one each", ok_attempts)
    check(all(a.status == MessageStatus.SUCCESS and a.response_status_code == 200 for a in ok_attempts), "ok")
    check(all(a.response == "" for a in ok_attempts), "v2 SDKs ask without content", ok_attempts)
    full = by_endpoint(c, app, ok, with_content=True)
    check(all("answer 200" in a.response for a in full), "with_content=True", full)
    failed = by_endpoint(c, app, bad, status=MessageStatus.FAIL)
    check(len(failed) >= 3 and all(a.status == MessageStatus.FAIL for a in failed), "status=fail", failed)
    check(by_endpoint(c, app, bad, status=MessageStatus.SUCCESS) == [], "status=success on bad")
    check(by_endpoint(c, app, ok, status=MessageStatus.CANCELED) == [], "nothing is canceled")
    check(len(by_endpoint(c, app, bad, status_code_class=StatusCodeClass.CODE5XX)) == len(failed), "5xx")
    check(by_endpoint(c, app, bad, status_code_class=StatusCodeClass.CODE2XX) == [], "2xx on bad")
    check([a.msg_id for a in by_endpoint(c, app, ok, tag="vip")] == [first.id], "tag")
    check([a.msg_id for a in by_endpoint(c, app, ok, channel="eu")] == [first.id], "channel")
    typed = by_endpoint(c, app, ok, event_types=["order.updated"])
    check([a.msg_id for a in typed] == [sent[2].id], "event_types", typed)
    with_msg = by_endpoint(c, app, ok, with_msg=True)
    check(all(a.msg is not None and a.msg.id == a.msg_id and is_time(a.msg.timestamp) for a in with_msg), "with_msg")
    newest = ok_attempts[0]
    check(
        all(a.id != newest.id for a in by_endpoint(c, app, ok, after=newest.timestamp)),
        "after is strict",
    )
    check(
        [a.id for a in by_endpoint(c, app, ok, before=newest.timestamp)]
        == [a.id for a in ok_attempts if a.timestamp < newest.timestamp],
        "before",
    )
    page = c.message_attempt.list_by_endpoint(app, ok, MessageAttemptListByEndpointOptions(limit=2))
    rest = c.message_attempt.list_by_endpoint(
        app, ok, MessageAttemptListByEndpointOptions(limit=2, iterator=page.iterator)
    )
    back = c.message_attempt.list_by_endpoint(
        app, ok, MessageAttemptListByEndpointOptions(limit=2, iterator=rest.prev_iterator)
    )
    check(ids(page) + ids(rest) == [a.id for a in ok_attempts], "pages", (ids(page), ids(rest)))
    check(ids(back) == ids(page), "prev_iterator reads the first page", ids(back))
    return newest


def message_lists(c, app, ok, bad, sent):
    first = sent[0]
    attempts = c.message_attempt.list_by_msg(app, first.id, MessageAttemptListByMsgOptions(limit=250)).data
    check({a.endpoint_id for a in attempts} == {ok, bad}, "both endpoints", attempts)
    only_ok = c.message_attempt.list_by_msg(app, first.id, MessageAttemptListByMsgOptions(endpoint_id=ok)).data
    check([a.endpoint_id for a in only_ok] == [ok], "endpoint_id", only_ok)
    only_fail = c.message_attempt.list_by_msg(
        app, first.id, MessageAttemptListByMsgOptions(status=MessageStatus.FAIL)
    ).data
    check(only_fail and all(a.endpoint_id == bad for a in only_fail), "status on a message", only_fail)
    got = c.message_attempt.get(app, first.id, only_ok[0].id)
    check(got.id == only_ok[0].id and got.msg_id == first.id, "get", got)
    check_attempt(got, "get parses")

    messages = c.message_attempt.list_attempted_messages(
        app, ok, MessageAttemptListAttemptedMessagesOptions(limit=250, with_content=True)
    ).data
    # Newest attempt first; concurrent deliveries may finish in any order, so the order is
    # the attempts', not the sends'.
    newest_first = []
    for a in by_endpoint(c, app, ok):
        if a.msg_id not in newest_first:
            newest_first.append(a.msg_id)
    check(sorted(newest_first) == sorted(m.id for m in sent), "every message attempted", newest_first)
    check([m.id for m in messages] == newest_first, "attempted messages", messages)
    check(all(m.status == MessageStatus.SUCCESS and is_time(m.timestamp) for m in messages), "state", messages)
    first = next(m for m in messages if m.id == sent[0].id)
    check(first.payload == {"n": 0} and first.tags == ["vip"], "content", first)
    failing = c.message_attempt.list_attempted_messages(
        app, bad, MessageAttemptListAttemptedMessagesOptions(status=MessageStatus.SUCCESS)
    ).data
    check(failing == [], "attempted messages by status", failing)
    page = c.message_attempt.list_attempted_messages(app, ok, MessageAttemptListAttemptedMessagesOptions(limit=2))
    rest = c.message_attempt.list_attempted_messages(
        app, ok, MessageAttemptListAttemptedMessagesOptions(limit=2, iterator=page.iterator)
    )
    back = c.message_attempt.list_attempted_messages(
        app, ok, MessageAttemptListAttemptedMessagesOptions(limit=2, iterator=rest.prev_iterator)
    )
    check(ids(page) + ids(rest) == [m.id for m in messages], "attempted pages", (ids(page), ids(rest)))
    check(ids(back) == ids(page), "attempted prev_iterator", ids(back))

    destinations = c.message_attempt.list_attempted_destinations(app, first.id).data
    check(sorted(d.id for d in destinations) == sorted([ok, bad]), "destinations", destinations)
    for d in destinations:
        check(d.url.startswith("http") and is_time(d.created_at) and is_time(d.updated_at), "endpoint fields", d)
        wanted = MessageStatus.SUCCESS if d.id == ok else MessageStatus.FAIL
        check(d.status == wanted or (d.id == bad and d.status == MessageStatus.PENDING), "state", d)
    one = c.message_attempt.list_attempted_destinations(
        app, first.id, MessageAttemptListAttemptedDestinationsOptions(limit=1)
    )
    two = c.message_attempt.list_attempted_destinations(
        app, first.id, MessageAttemptListAttemptedDestinationsOptions(limit=1, iterator=one.iterator)
    )
    again = c.message_attempt.list_attempted_destinations(
        app, first.id, MessageAttemptListAttemptedDestinationsOptions(limit=1, iterator=two.prev_iterator)
    )
    check(len(ids(one)) == 1 and ids(one) + ids(two) == [d.id for d in destinations], "pages")
    check(ids(again) == ids(one) and two.done, "destinations prev_iterator", ids(again))


def main(c):
    app = c.application.create(ApplicationIn(name="Attempts")).id
    ok = c.endpoint.create(app, EndpointIn(url=os.environ["RECEIVER_OK"])).id
    bad = c.endpoint.create(app, EndpointIn(url=os.environ["RECEIVER_FAIL"])).id
    sent = [
        c.message.create(app, MessageIn(event_type="order.created", payload={"n": 0}, channels=["eu"], tags=["vip"])),
        c.message.create(app, MessageIn(event_type="order.created", payload={"n": 1})),
        c.message.create(app, MessageIn(event_type="order.updated", payload={"n": 2})),
    ]
    wait_for("an attempt of each message to each endpoint", lambda: len(by_endpoint(c, app, ok)) == 3
             and len({a.msg_id for a in by_endpoint(c, app, bad)}) == 3)
    endpoint_lists(c, app, ok, bad, sent)
    message_lists(c, app, ok, bad, sent)

    resent = c.message_attempt.resend(app, sent[0].id, ok)
    check(resent.model_dump() == {}, "resend answers EmptyResponse", resent)
    manual = wait_for(
        "the resend's attempt",
        lambda: [a for a in by_endpoint(c, app, ok) if a.trigger_type == MessageAttemptTriggerType.MANUAL],
    )
    check(manual[0].msg_id == sent[0].id, "a manual attempt of the resent message", manual)
    return {"app": app, "accepting": ok, "resent": sent[0].id}


run(main)
