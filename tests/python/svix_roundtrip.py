"""Drives Hookline with the official Svix Python SDK.

Environment: HOOKLINE_URL (http://127.0.0.1:PORT), HOOKLINE_TOKEN, RECEIVER_URL.
Creates an application, an endpoint at RECEIVER_URL and one message, then lists and gets
it back. Prints one JSON line with what it saw; exits non-zero on any SDK error.
"""

import json
import os

from svix.api import (
    ApplicationIn,
    EndpointIn,
    MessageGetOptions,
    MessageIn,
)

from sdk_common import client as sdk_client, exit_with


def main() -> int:
    client = sdk_client()
    app = client.application.create(ApplicationIn(name="Round trip", uid="roundtrip-app"))
    same = client.application.get("roundtrip-app")
    assert same.id == app.id, (same.id, app.id)

    endpoint = client.endpoint.create(
        app.id,
        EndpointIn(url=os.environ["RECEIVER_URL"], event_types=["invoice.paid"]),
    )
    secret = client.endpoint.get_secret(app.id, endpoint.id)
    assert secret.key.startswith("whsec_"), "generated secrets use the whsec_ form"

    message = client.message.create(
        app.id,
        MessageIn(event_type="invoice.paid", payload={"id": "inv_1", "amount": 4200}),
    )
    listed = client.message.list(app.id)
    # The SDK asks for messages without their payload unless told otherwise.
    got = client.message.get(app.id, message.id, MessageGetOptions(with_content=True))
    got_default = client.message.get(app.id, message.id)
    endpoints = client.endpoint.list(app.id)

    print(
        json.dumps(
            {
                "app_id": app.id,
                "endpoint_id": endpoint.id,
                "msg_id": message.id,
                "listed_ids": [m.id for m in listed.data],
                "got_event_type": got.event_type,
                "got_payload": got.payload,
                "got_default_payload": got_default.payload,
                "created_payload": message.payload,
                "endpoint_event_types": endpoints.data[0].event_types,
            }
        )
    )
    return 0


if __name__ == "__main__":
    exit_with(main)
