"""Operational webhook endpoints through the official Svix Python SDK: create, list, get,
upsert (update and create), secret, headers and delete, then endpoint events to trigger.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN (admin), OP_ALL_URL, OP_FILTERED_URL, OP_OFF_URL
(receiver paths for the operational endpoints), APP_URL (an app endpoint), NEW_KEY (the
secret to rotate to). Prints one JSON line of what it made and saw; exits non-zero on an
unexpected SDK error.
"""

import json
import os

from svix.api import (
    ApplicationIn,
    EndpointIn,
    OperationalWebhookEndpointHeadersIn,
    OperationalWebhookEndpointIn,
    OperationalWebhookEndpointSecretIn,
    OperationalWebhookEndpointUpsertIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError

from sdk_common import exit_with


def refusal(call):
    """How an SDK call was refused: its status and the fields or code named."""
    try:
        call()
        return "ok"
    except HttpError as error:
        return {"status": error.status_code, "code": error.code}
    except HTTPValidationError as error:
        return {"status": error.status_code, "loc": [item.loc for item in error.detail]}


def main() -> int:
    env = os.environ
    client = Svix(env["HOOKLINE_TOKEN"], SvixOptions(server_url=env["HOOKLINE_URL"], retry_schedule=[]))
    ops = client.operational_webhook.endpoint
    every = ops.create(
        OperationalWebhookEndpointIn(
            url=env["OP_ALL_URL"],
            uid="py-op-all",
            description="everything",
            metadata={"team": "ops"},
            headers={"x-op-source": "py"},
        )
    )
    filtered = ops.create(
        OperationalWebhookEndpointIn(
            url=env["OP_FILTERED_URL"],
            uid="py-op-filtered",
            event_types=["endpoint.created"],
            throttle_rate=10,
        )
    )
    off = ops.create(OperationalWebhookEndpointIn(url=env["OP_OFF_URL"], disabled=True))
    seen = {
        "all": every.id,
        "filtered": filtered.id,
        "off": off.id,
        "created": every.model_dump(mode="json", by_alias=True),
        "unsent_type": refusal(
            lambda: ops.create(
                OperationalWebhookEndpointIn(url=env["OP_ALL_URL"], event_types=["endpoint.enabled"])
            )
        ),
        "configured_uid": refusal(
            lambda: ops.create(OperationalWebhookEndpointIn(url=env["OP_ALL_URL"], uid="operator"))
        ),
        "configured_get": refusal(lambda: ops.get("operator")),
    }
    seen["listed"] = sorted(ep.id for ep in ops.list().data)
    seen["by_uid"] = ops.get("py-op-filtered").model_dump(mode="json", by_alias=True)
    seen["upsert_update"] = ops.upsert(
        "py-op-filtered",
        OperationalWebhookEndpointUpsertIn(
            url=env["OP_FILTERED_URL"],
            description="only endpoint.created",
            event_types=["endpoint.created"],
            throttle_rate=10,
        ),
    ).model_dump(mode="json", by_alias=True)
    made = ops.upsert(
        "py-op-upserted", OperationalWebhookEndpointUpsertIn(url=env["OP_OFF_URL"], disabled=True)
    )
    seen["upsert_create"] = {"uid": made.uid, "is_new": made.id not in seen["listed"]}
    ops.set_headers(every.id, OperationalWebhookEndpointHeadersIn(headers={"x-op-source": "py", "x-extra": "1"}))
    seen["headers"] = ops.get_headers(every.id).model_dump(mode="json")
    ops.rotate_secret(every.id, OperationalWebhookEndpointSecretIn(key=env["NEW_KEY"], grace_period_seconds=0))
    seen["all_secret"] = ops.get_secret(every.id).key
    seen["filtered_secret"] = ops.get_secret(filtered.id).key
    seen["bad_grace"] = refusal(
        lambda: ops.rotate_secret(every.id, OperationalWebhookEndpointSecretIn(grace_period_seconds=10**9))
    )
    ops.delete("py-op-upserted")
    seen["after_delete"] = refusal(lambda: ops.get("py-op-upserted"))

    # Operational events to receive: one app endpoint created, then deleted.
    app = client.application.create(ApplicationIn(name="Operational trigger", uid="py-op-trigger"))
    endpoint = client.endpoint.create(app.id, EndpointIn(url=env["APP_URL"]))
    client.endpoint.delete(app.id, endpoint.id)
    seen["app"] = app.id
    seen["endpoint"] = endpoint.id
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    exit_with(main)
