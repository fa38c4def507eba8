"""App portal tokens through the official Svix Python SDK: capabilities, readOnly,
`application`, sessions, expire-all, logout, health, a wrong method and a refused operation.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN (an admin token), RECEIVER_URL. Prints one JSON
line of what each call did (the HTTP status of every refusal); the Rust test asserts on it.
Exits non-zero on an unexpected SDK error.
"""

import json
import os
import time

from svix.api import (
    ApplicationIn,
    ApplicationTokenExpireIn,
    AppPortalAccessIn,
    AppPortalCapability,
    EndpointIn,
    EndpointSecretRotateIn,
    Svix,
    SvixOptions,
)
from svix.exceptions import HttpError, HTTPValidationError

from sdk_common import exit_with

APP_UID = "py-portal-app"


def client(token):
    return Svix(token, SvixOptions(server_url=os.environ["HOOKLINE_URL"], retry_schedule=[]))


def status(call):
    """The HTTP status an SDK call was refused with (with its error code), or "ok"."""
    try:
        call()
        return "ok"
    except HttpError as error:
        return {"status": error.status_code, "code": error.code, "detail": error.detail}
    except HTTPValidationError as error:
        return {
            "status": error.status_code,
            "loc": [item.loc for item in error.detail],
        }


def token(admin, **options):
    return admin.authentication.app_portal_access(APP_UID, AppPortalAccessIn(**options)).token


def main() -> int:
    admin = client(os.environ["HOOKLINE_TOKEN"])
    seen = {"health": admin.health.get()}
    # The app does not exist yet: `application` creates it under the path's uid.
    minted = admin.authentication.app_portal_access(
        APP_UID,
        AppPortalAccessIn(
            application=ApplicationIn(name="Portal from Python"),
            capabilities=[AppPortalCapability.VIEW_BASE],
            session_id="py-s1",
        ),
    )
    app = admin.application.get(APP_UID)
    seen["app"] = {"id": app.id, "uid": app.uid, "name": app.name}
    seen["url_has_token"] = minted.token in minted.url
    endpoint = admin.endpoint.create(app.id, EndpointIn(url=os.environ["RECEIVER_URL"]))
    ep = endpoint.id

    view = client(minted.token)
    new_endpoint = EndpointIn(url=os.environ["RECEIVER_URL"])
    seen["view_base"] = {
        "list": status(lambda: view.endpoint.list(app.id)),
        "get_secret": status(lambda: view.endpoint.get_secret(app.id, ep)),
        "rotate_secret": status(
            lambda: view.endpoint.rotate_secret(app.id, ep, EndpointSecretRotateIn())
        ),
        "create_endpoint": status(lambda: view.endpoint.create(app.id, new_endpoint)),
    }
    secrets = client(
        token(
            admin,
            capabilities=[
                AppPortalCapability.VIEW_BASE,
                AppPortalCapability.MANAGE_ENDPOINT_SECRET,
            ],
        )
    )
    seen["manage_secret"] = {
        "get_secret": status(lambda: secrets.endpoint.get_secret(app.id, ep)),
        # Through the SDK's request path, not `rotate_secret`: svix 2.9.1 parses a body
        # from that answer, and what the rotation answers is not this test's subject.
        "rotate_secret": status(
            lambda: secrets.endpoint._request_sync(
                method="post",
                path="/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
                path_params={"app_id": app.id, "endpoint_id": ep},
                json_body="{}",
            )
        ),
        "create_endpoint": status(lambda: secrets.endpoint.create(app.id, new_endpoint)),
    }
    reader = client(token(admin, read_only=True))
    seen["read_only"] = {
        "get": status(lambda: reader.endpoint.get(app.id, ep)),
        "create_endpoint": status(lambda: reader.endpoint.create(app.id, new_endpoint)),
    }
    seen["feature_flags"] = status(lambda: token(admin, feature_flags=["beta"]))
    seen["no_view_base"] = status(
        lambda: token(admin, capabilities=[AppPortalCapability.MANAGE_ENDPOINT])
    )

    # Logout ends exactly the calling token.
    seen["logout"] = status(view.authentication.logout)
    seen["after_logout"] = status(lambda: view.endpoint.list(app.id))
    seen["other_token_after_logout"] = status(lambda: reader.endpoint.get(app.id, ep))
    seen["admin_logout"] = status(admin.authentication.logout)

    # expire-all with sessionIds expires only those sessions' tokens.
    s2 = client(token(admin, session_id="py-s2"))
    s3 = client(token(admin, session_id="py-s3"))
    admin.authentication.expire_all(app.id, ApplicationTokenExpireIn(session_ids=["py-s2"]))
    seen["session_expired"] = status(lambda: s2.endpoint.list(app.id))
    seen["other_session"] = status(lambda: s3.endpoint.list(app.id))
    # A delayed expiry keeps the token working until then, and ends it after.
    admin.authentication.expire_all(app.id, ApplicationTokenExpireIn(expiry=2))
    seen["before_delayed_expiry"] = status(lambda: s3.endpoint.list(app.id))
    deadline = time.monotonic() + 15
    while status(lambda: s3.endpoint.list(app.id)) == "ok" and time.monotonic() < deadline:
        time.sleep(0.2)
    seen["after_delayed_expiry"] = status(lambda: s3.endpoint.list(app.id))

    seen["unsupported"] = status(admin.connector.list)
    # The SDK's own request path, with a method the route does not have.
    seen["wrong_method"] = status(
        lambda: admin.health._request_sync(method="patch", path="/api/v1/app", path_params={})
    )
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    exit_with(main)
