"""Every application call of the official Svix Python SDK against Hookline.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_URL (an endpoint URL for the filters;
the Rust test points the server's DNS at loopback so that play.svix.com resolves).
"""

import os

from svix.api import (
    ApplicationCreateOptions,
    ApplicationIn,
    ApplicationListOptions,
    ApplicationOut,
    ApplicationPatch,
    EndpointIn,
    Ordering,
)

from sdk_common import check, error_of, ids, is_time, names_field, run


def every_app(c, **filters):
    return ids(c.application.list(ApplicationListOptions(limit=250, **filters)))


def main(c):
    receiver = os.environ["RECEIVER_URL"]
    alpha = c.application.create(
        ApplicationIn(name="Alpha", uid="py-alpha", metadata={"team": "a"}, throttle_rate=7)
    )
    check(isinstance(alpha, ApplicationOut), "create answers ApplicationOut", alpha)
    check(alpha.id.startswith("app_") and alpha.uid == "py-alpha", "id and uid", alpha)
    check(is_time(alpha.created_at) and is_time(alpha.updated_at), "times parse", alpha)
    check(alpha.metadata == {"team": "a"} and alpha.throttle_rate == 7, "fields kept", alpha)

    same = c.application.get_or_create(ApplicationIn(name="Other name", uid="py-alpha"))
    check(same.id == alpha.id and same.name == "Alpha", "get_or_create finds the app", same)
    beta = c.application.get_or_create(ApplicationIn(name="Beta", uid="py-beta"))
    check(beta.id != alpha.id and beta.name == "Beta", "get_or_create creates", beta)
    status, body = error_of(lambda: c.application.create(ApplicationIn(name="Dup", uid="py-alpha")))
    check(status == 409, "a taken uid is a conflict", (status, body))

    once = ApplicationCreateOptions(idempotency_key="py-apps-once")
    first = c.application.create(ApplicationIn(name="Once"), once)
    again = c.application.create(ApplicationIn(name="Once"), once)
    check(again.id == first.id, "a repeated idempotency-key answers the first app", (first, again))
    c.application.delete(first.id)

    check(c.application.get("py-alpha").id == alpha.id, "get by uid")
    by_id = c.application.get(alpha.id)
    check(by_id.metadata == {"team": "a"} and by_id.throttle_rate == 7, "get by id", by_id)

    updated = c.application.upsert(
        alpha.id, ApplicationIn(name="Alpha 2", uid="py-alpha", metadata={"team": "b"})
    )
    check(updated.name == "Alpha 2" and updated.metadata == {"team": "b"}, "upsert updates", updated)
    check(updated.throttle_rate is None, "upsert replaces: no throttle_rate", updated)
    check(updated.created_at == alpha.created_at, "upsert keeps created_at", updated)
    gamma = c.application.upsert("py-gamma", ApplicationIn(name="Gamma"))
    check(gamma.uid == "py-gamma" and gamma.name == "Gamma", "upsert creates by uid", gamma)

    patched = c.application.patch(alpha.id, ApplicationPatch(throttle_rate=3, uid="py-alpha-2"))
    check(patched.throttle_rate == 3 and patched.uid == "py-alpha-2", "patch sets", patched)
    check(patched.name == "Alpha 2" and patched.metadata == {"team": "b"}, "patch keeps", patched)
    cleared = c.application.patch(alpha.id, ApplicationPatch(throttle_rate=None))
    check(cleared.throttle_rate is None, "patch null clears throttle_rate", cleared)
    check(c.application.get(alpha.id).throttle_rate is None, "cleared when read back")

    # A throttle is 1 to 65,535 messages per second; anything else is a 422 naming it.
    for bad in (0, 65_536):
        refusals = {
            "create": lambda: c.application.create(ApplicationIn(name="Bad", throttle_rate=bad)),
            "upsert": lambda: c.application.upsert(
                alpha.id, ApplicationIn(name="Alpha 2", throttle_rate=bad)
            ),
            "patch": lambda: c.application.patch(alpha.id, ApplicationPatch(throttle_rate=bad)),
        }
        for call, refused in refusals.items():
            status, body = error_of(refused)
            check(
                status == 422 and names_field(body, "throttleRate"),
                f"{call} with throttle_rate={bad} is refused",
                (status, body),
            )
    check(c.application.get(alpha.id).name == "Alpha 2", "a refused change changes nothing")

    # alpha: a live endpoint; beta: none; gamma: only a disabled one; delta: only Svix Play.
    c.endpoint.create(alpha.id, EndpointIn(url=receiver))
    c.endpoint.create(gamma.id, EndpointIn(url=receiver, disabled=True))
    delta = c.application.create(ApplicationIn(name="Delta", uid="py-delta"))
    c.endpoint.create(delta.id, EndpointIn(url="https://play.svix.com/in/e_hookline/"))
    everyone = every_app(c)
    check(set(everyone) == {alpha.id, beta.id, gamma.id, delta.id}, "list shows all", everyone)
    without_empty = every_app(c, exclude_apps_with_no_endpoints=True)
    check(set(without_empty) == {alpha.id, gamma.id, delta.id}, "no endpoints", without_empty)
    without_disabled = every_app(c, exclude_apps_with_disabled_endpoints=True)
    check(set(without_disabled) == {alpha.id, beta.id, delta.id}, "disabled", without_disabled)
    without_play = every_app(c, exclude_apps_with_svix_play_endpoints=True)
    check(set(without_play) == {alpha.id, beta.id, gamma.id}, "svix play", without_play)

    # Newest first by default; iterator forward, prev_iterator back to the same page.
    check(everyone == sorted(everyone, reverse=True), "newest first", everyone)
    first = c.application.list(ApplicationListOptions(limit=2))
    check(ids(first) == everyone[:2] and not first.done, "first page", ids(first))
    second = c.application.list(ApplicationListOptions(limit=2, iterator=first.iterator))
    check(ids(second) == everyone[2:], "second page", ids(second))
    back = c.application.list(ApplicationListOptions(limit=2, iterator=second.prev_iterator))
    check(ids(back) == ids(first), "prev_iterator reads the first page again", ids(back))
    ascending = every_app(c, order=Ordering.ASCENDING)
    check(ascending == list(reversed(everyone)), "order=ascending", ascending)
    filtered = c.application.list(
        ApplicationListOptions(limit=1, exclude_apps_with_no_endpoints=True)
    )
    filtered_next = c.application.list(
        ApplicationListOptions(
            limit=1, exclude_apps_with_no_endpoints=True, iterator=filtered.iterator
        )
    )
    filtered_back = c.application.list(
        ApplicationListOptions(
            limit=1, exclude_apps_with_no_endpoints=True, iterator=filtered_next.prev_iterator
        )
    )
    with_endpoints = [app for app in everyone if app != beta.id]
    check(ids(filtered) == with_endpoints[:1], "filtered first page", ids(filtered))
    check(ids(filtered_next) == with_endpoints[1:2], "filtered next page", ids(filtered_next))
    check(ids(filtered_back) == ids(filtered), "filtered prev_iterator", ids(filtered_back))

    c.application.delete(beta.id)
    status, body = error_of(lambda: c.application.get(beta.id))
    check(status == 404 and body["code"] == "not_found", "deleted app is gone", (status, body))
    return {"apps": everyone}


run(main)
