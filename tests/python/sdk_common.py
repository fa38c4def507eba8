"""What every per-resource SDK script shares: a client for the server under test, checks
that name what went wrong, the SDK's errors as values, and the one JSON line the Rust test
reads (`run_python`).

Environment: HOOKLINE_URL (http://127.0.0.1:PORT) and HOOKLINE_TOKEN.
"""

import json
import os
import sys
import time
import traceback
from datetime import datetime

from svix.api import Svix, SvixOptions
from svix.exceptions import HttpError, HTTPValidationError


def client() -> Svix:
    # No retries: a failed call must surface as the error the SDK raises, not be hidden.
    return Svix(
        os.environ["HOOKLINE_TOKEN"],
        SvixOptions(server_url=os.environ["HOOKLINE_URL"], retry_schedule=[]),
    )


class CheckFailed(Exception):
    pass


def check(condition, what, seen=None):
    if not condition:
        detail = "" if seen is None else f": saw {seen!r}"
        raise CheckFailed(f"{what}{detail}")


def is_time(value) -> bool:
    """A timezone-aware datetime, as the SDK parses every timestamp."""
    return isinstance(value, datetime) and value.tzinfo is not None


def error_of(call):
    """Runs `call`, which must fail; answers `(status, body)` of the SDK's exception."""
    try:
        result = call()
    except HTTPValidationError as error:
        return error.status_code, {"detail": [d.to_dict() for d in error.detail]}
    except HttpError as error:
        return error.status_code, {"code": error.code, "detail": error.detail}
    raise CheckFailed(f"expected an API error, got {result!r}")


def names_field(body, field) -> bool:
    """Whether a 422 body's `loc` names `field`."""
    return any(field in d.get("loc", []) for d in body.get("detail", []))


def ids(page):
    return [item.id for item in page.data]


def wait_for(what, probe, seconds=20.0):
    """Polls `probe` until it answers something truthy, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out waiting for {what}")
        time.sleep(0.05)


def run(main):
    """Runs `main(client)` and prints `{"ok": true, ...result}` or `{"ok": false, "error"}`;
    exits non-zero on failure."""
    try:
        result = main(client()) or {}
        print(json.dumps({"ok": True, **result}, default=str))
        sys.exit(0)
    except Exception as error:  # report SDK failures as JSON for the Rust test to show
        traceback.print_exc()
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        sys.exit(1)


def exit_with(main):
    """Runs `main()`, a script that prints its own JSON line and answers its exit code; an
    SDK failure is printed as `{"error": ...}` for the Rust test to show, and exits 1."""
    try:
        sys.exit(main())
    except Exception as error:  # report SDK failures as JSON for the Rust test to show
        traceback.print_exc()
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        sys.exit(1)
