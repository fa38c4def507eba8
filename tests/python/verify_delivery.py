"""Verifies one delivery with the standardwebhooks reference library.

Reads {"secret": "whsec_...", "headers": {...}, "body": "<raw body>"} on stdin.
Prints {"ok": true} and exits 0 when the signature verifies, else {"ok": false, ...} and 1.
"""

import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    given = json.load(sys.stdin)
    try:
        Webhook(given["secret"]).verify(given["body"], given["headers"])
    except Exception as error:
        print(json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
