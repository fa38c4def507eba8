"""Resend and the list options through the official Svix Python SDK.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, RECEIVER_URL. Creates an app, an endpoint and
three messages (one tagged), resends one, lists by tag, and pages forward then back with
`prev_iterator`. Prints one JSON line; exits non-zero on any SDK error.
"""

import json
import os

from svix.api import (
    ApplicationIn,
    EndpointIn,
    MessageIn,
    MessageListOptions,
)

from sdk_common import client as sdk_client, exit_with


def main() -> int:
    client = sdk_client()
    app = client.application.create(ApplicationIn(name="Lists", uid="lists-app"))
    endpoint = client.endpoint.create(app.id, EndpointIn(url=os.environ["RECEIVER_URL"]))
    sent = [
        client.message.create(
            app.id,
            MessageIn(event_type="invoice.paid", payload={"n": n}, tags=["vip"] if n == 0 else None),
        )
        for n in range(3)
    ]
    resent = client.message_attempt.resend(app.id, sent[0].id, endpoint.id)
    tagged = client.message.list(app.id, MessageListOptions(tag="vip"))
    first = client.message.list(app.id, MessageListOptions(limit=2))
    second = client.message.list(app.id, MessageListOptions(limit=2, iterator=first.iterator))
    back = client.message.list(
        app.id, MessageListOptions(limit=2, iterator=second.prev_iterator)
    )
    print(
        json.dumps(
            {
                "sent": [m.id for m in sent],
                "resend": resent.model_dump(),
                "tagged": [m.id for m in tagged.data],
                "tags": [m.tags for m in tagged.data],
                "first": [m.id for m in first.data],
                "back": [m.id for m in back.data],
            }
        )
    )
    return 0


if __name__ == "__main__":
    exit_with(main)
