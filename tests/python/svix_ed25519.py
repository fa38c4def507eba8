"""Ed25519-signed deliveries (Standard Webhooks `v1a`), driven through the official Svix
Python SDK and verified with Python's `cryptography`, an implementation independent of
Hookline's.

The script runs its own HTTP receiver on loopback. It creates an endpoint with
`keyType: "ed25519"` (over plain HTTP: the SDK's `EndpointIn` drops fields it does not
know), reads its `whpk_` public key with `endpoint.get_secret`, and checks each delivery's
`v1a,` entries over `{msg_id}.{timestamp}.{body}`. Then it rotates to an ed25519 key it
made itself with `cryptography` (the 64-byte seed||public form), with a 3 s grace period:
during the grace a delivery carries two `v1a,` entries, one verified by the old public key
and one by the new; after it, only the new key verifies and the old one does not.

Environment: HOOKLINE_URL, HOOKLINE_TOKEN.
"""

import base64
import json
import os
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from svix.api import ApplicationIn, EndpointOut, EndpointSecretRotateIn, MessageIn

from sdk_common import CheckFailed, check, run, wait_for

GRACE_SECONDS = 3


class Deliveries:
    """What the receiver got, by `webhook-id`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_id = {}

    def add(self, headers, body):
        with self.lock:
            self.by_id[headers.get("webhook-id", "")] = (headers, body)

    def get(self, msg_id):
        with self.lock:
            return self.by_id.get(msg_id)


def start_receiver(deliveries):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            deliveries.add({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/ed25519"


def raw(method, path, body):
    request = urllib.request.Request(
        os.environ["HOOKLINE_URL"] + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {os.environ['HOOKLINE_TOKEN']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def public_key(text):
    check(text.startswith("whpk_"), "a whpk_ public key", text)
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text[len("whpk_"):]))


def v1a_entries(headers):
    entries = headers.get("webhook-signature", "").split(" ")
    check(all(e.startswith("v1a,") for e in entries), "only v1a entries", entries)
    return [base64.b64decode(e[len("v1a,"):]) for e in entries]


def verifies(key, headers, body):
    """Whether one of the delivery's `v1a,` entries is `key`'s signature of it."""
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for signature in v1a_entries(headers):
        try:
            key.verify(signature, content)
            return True
        except InvalidSignature:
            continue
    return False


def deliver(c, app, deliveries, n):
    """Sends one message; answers its delivery's `(headers, body)`."""
    msg = c.message.create(app, MessageIn(event_type="py.ed25519", payload={"n": n}))
    return wait_for(f"the delivery of message {n}", lambda: deliveries.get(msg.id))


def poll_deliveries(c, app, deliveries, what, wanted, seconds=20.0):
    """Sends a message at a time until a delivery satisfies `wanted`, within `seconds`."""
    deadline = time.monotonic() + seconds
    n = 1000
    while time.monotonic() < deadline:
        n += 1
        delivered = deliver(c, app, deliveries, n)
        if wanted(*delivered):
            return delivered
        time.sleep(0.1)
    raise CheckFailed(f"timed out waiting for {what}")


def main(c):
    deliveries = Deliveries()
    server, url = start_receiver(deliveries)
    try:
        return exercise(c, deliveries, url)
    finally:
        server.shutdown()


def exercise(c, deliveries, url):
    app = c.application.create(ApplicationIn(name="py-ed25519")).id
    made = raw("POST", f"/api/v1/app/{app}/endpoint", {"url": url, "keyType": "ed25519"})
    check(made.get("keyType") == "ed25519", "an ed25519 endpoint", made)
    endpoint = made["id"]
    check(isinstance(c.endpoint.get(app, endpoint), EndpointOut), "the SDK reads it")
    old_text = c.endpoint.get_secret(app, endpoint).key
    old = public_key(old_text)

    headers, body = deliver(c, app, deliveries, 1)
    check(len(v1a_entries(headers)) == 1, "one v1a entry", headers)
    check(verifies(old, headers, body), "the public key verifies the delivery", headers)
    tampered = body.replace(b'"n":1', b'"n":2')
    check(tampered != body and not verifies(old, headers, tampered), "a changed body does not")

    private = Ed25519PrivateKey.generate()
    new_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    new_text = "whpk_" + base64.b64encode(new_public).decode()
    seed = private.private_bytes_raw()
    whsk = "whsk_" + base64.b64encode(seed + new_public).decode()
    rotated = c.endpoint.rotate_secret(
        app, endpoint, EndpointSecretRotateIn(key=whsk, grace_period_seconds=GRACE_SECONDS)
    )
    check(rotated.key == new_text, "the rotation answers the new public key", rotated)
    check(c.endpoint.get_secret(app, endpoint).key == new_text, "get_secret reads it")
    new = public_key(new_text)

    headers, body = poll_deliveries(
        c, app, deliveries, "a delivery signed with both keys",
        lambda h, b: len(v1a_entries(h)) == 2, seconds=GRACE_SECONDS,
    )
    check(verifies(new, headers, body), "within the grace, the new key verifies", headers)
    check(verifies(old, headers, body), "within the grace, the old key verifies", headers)

    headers, body = poll_deliveries(
        c, app, deliveries, "the end of the grace period", lambda h, b: len(v1a_entries(h)) == 1
    )
    check(verifies(new, headers, body), "after the grace, the new key verifies", headers)
    check(not verifies(old, headers, body), "after the grace, the old key does not", headers)
    return {"app": app, "endpoint": endpoint, "old": old_text, "new": new_text}


if __name__ == "__main__":
    run(main)
