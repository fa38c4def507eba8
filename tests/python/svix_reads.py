"""The reads and lists whose query parameters the Python SDK always sends, and a refusal.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN, APP_ID, ENDPOINT_ID, MSG_ID, ATTEMPT_ID,
EVENT_TYPE (a message of that type already attempted once). The SDK sends
`with_content=false` on message and event type reads and `expanded_statuses=true` on attempt
reads whatever the caller asks; each call must be served. A field Hookline does not
support must come back as the SDK's validation error naming it. Prints one JSON line.
"""

import datetime
import json
import os

from svix.api import (
    EndpointGetStatsOptions,
    EventTypeListOptions,
    MessageAttemptListAttemptedDestinationsOptions,
    MessageGetOptions,
    MessageIn,
)
from svix.exceptions import HTTPValidationError

from sdk_common import client as sdk_client, exit_with


def main() -> int:
    client = sdk_client()
    app, endpoint = os.environ["APP_ID"], os.environ["ENDPOINT_ID"]
    msg, attempt = os.environ["MSG_ID"], os.environ["ATTEMPT_ID"]
    created = client.message.create(
        app, MessageIn(event_type=os.environ["EVENT_TYPE"], payload={"k": 1})
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    stats = client.endpoint.get_stats(
        app,
        endpoint,
        EndpointGetStatsOptions(
            since=now - datetime.timedelta(hours=1), until=now + datetime.timedelta(minutes=5)
        ),
    )
    try:
        client.message.create(
            app,
            MessageIn(event_type=os.environ["EVENT_TYPE"], payload={}, transformations_params={"a": 1}),
        )
        refused = None
    except HTTPValidationError as error:
        refused = {"status": error.status_code, "loc": [d.loc for d in error.detail]}
    print(
        json.dumps(
            {
                "created_payload": created.payload,
                "got_payload": client.message.get(app, msg).payload,
                "got_full_payload": client.message.get(
                    app, msg, MessageGetOptions(with_content=True)
                ).payload,
                "type_schemas": [t.schemas for t in client.event_type.list().data],
                "type_schemas_full": [
                    t.schemas
                    for t in client.event_type.list(EventTypeListOptions(with_content=True)).data
                ],
                "by_msg": [a.id for a in client.message_attempt.list_by_msg(app, msg).data],
                "by_endpoint": [
                    a.id for a in client.message_attempt.list_by_endpoint(app, endpoint).data
                ],
                "attempted": [
                    m.id
                    for m in client.message_attempt.list_attempted_messages(app, endpoint).data
                ],
                "attempt": client.message_attempt.get(app, msg, attempt).id,
                "destinations": [
                    d.id
                    for d in client.message_attempt.list_attempted_destinations(
                        app, msg, MessageAttemptListAttemptedDestinationsOptions(limit=1)
                    ).data
                ],
                "stats_success": stats.success,
                "refused": refused,
            },
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    exit_with(main)
