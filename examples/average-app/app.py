"""average-app: the running average of one attribute of the entities the platform notifies.

The platform subscribes this app to the entities its manifest names (waziup-app.yaml,
needs.subscriptions) and notifies POST /notify. For each notified entity it keeps the
count and the mean of ATTR and writes them to the broker as the entity
<WAZIUP_ENTITY_PREFIX><entity id>, type Average (the app's own namespace: the only ids
its credentials may create). Standard library only, so it builds without a download.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("average-app")

BROKER = os.environ.get("WAZIUP_BROKER_URL", "http://localhost:1026").rstrip("/")
TENANT = os.environ.get("WAZIUP_TENANT", "")
SERVICE_PATH = os.environ.get("WAZIUP_SERVICE_PATH", "/")
PREFIX = os.environ.get("WAZIUP_ENTITY_PREFIX", "urn:waziup:average-app:")
ATTR = os.environ.get("ATTR", "temperature")
PORT = int(os.environ.get("PORT", "8000"))


class Token:
    """The app's token from the identity manager (password grant with the credentials the
    platform issued), fetched again before it expires; none without credentials."""

    def __init__(self) -> None:
        self.url = os.environ.get("WAZIUP_TOKEN_URL", "")
        self.value = ""
        self.expires = 0.0
        self.lock = threading.Lock()

    def header(self) -> dict[str, str]:
        if not self.url:
            return {}
        with self.lock:
            if time.time() > self.expires - 60:
                self._fetch()
        return {"Authorization": f"Bearer {self.value}"}

    def _fetch(self) -> None:
        basic = base64.b64encode(f"{os.environ['WAZIUP_CLIENT_ID']}:{os.environ['WAZIUP_CLIENT_SECRET']}".encode())
        form = urllib.parse.urlencode({"grant_type": "password", "username": os.environ["WAZIUP_USERNAME"],
                                       "password": os.environ["WAZIUP_PASSWORD"]}).encode()
        request = urllib.request.Request(self.url, data=form, headers={
            "Authorization": "Basic " + basic.decode(), "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = json.load(answer)
        self.value = body["access_token"]
        self.expires = time.time() + float(body.get("expires_in", 3600))
        log.info("got a token (expires in %s s)", body.get("expires_in"))


TOKEN = Token()
AVERAGES: dict[str, tuple[int, float]] = {}  # entity id -> (count, mean)
LOCK = threading.Lock()  # notifications come in on several threads: one update (and its write) at a time,
# so that the broker gets the averages in the order they were computed (a later write never holds an older average)


def write_average(source_id: str, count: int, mean: float) -> None:
    entity = {"id": PREFIX + source_id, "type": "Average",
              "average": {"type": "Number", "value": round(mean, 6)},
              "count": {"type": "Integer", "value": count},
              "source": {"type": "Text", "value": source_id},
              "attribute": {"type": "Text", "value": ATTR}}
    headers = {"Content-Type": "application/json", "Fiware-ServicePath": SERVICE_PATH, **TOKEN.header()}
    if TENANT:
        headers["Fiware-Service"] = TENANT
    body = json.dumps({"actionType": "append", "entities": [entity]}).encode()
    request = urllib.request.Request(BROKER + "/v2/op/update", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
        log.info("wrote %s: average %s of %d values", entity["id"], round(mean, 6), count)
    except urllib.error.HTTPError as exc:
        log.error("the broker refused %s: %s %s", entity["id"], exc.code, exc.read()[:300])
    except OSError as exc:
        log.error("the broker is not reachable: %s", exc)


def on_notification(doc: dict[str, Any]) -> None:
    for entity in doc.get("data", []):
        value = entity.get(ATTR, {})
        number = value.get("value") if isinstance(value, dict) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            log.info("%s: %s is not a number (%r), skipped", entity.get("id"), ATTR, number)
            continue
        with LOCK:
            count, mean = AVERAGES.get(entity["id"], (0, 0.0))
            count += 1
            mean += (number - mean) / count
            AVERAGES[entity["id"]] = (count, mean)
            log.info("%s: %s = %s", entity["id"], ATTR, number)
            write_average(entity["id"], count, mean)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            self._answer(200, {"status": "ok", "entities": len(AVERAGES)})
        else:
            self._answer(404, {"error": "NotFound"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path != "/notify":
            self._answer(404, {"error": "NotFound"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            doc = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._answer(400, {"error": "BadRequest"})
            return
        self._answer(204, None)
        on_notification(doc)

    def _answer(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per notification is logged by on_notification


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    log.info("listening on %d, averaging %s, writing to %s (tenant %r, path %s)", PORT, ATTR, BROKER, TENANT,
             SERVICE_PATH)
    server.serve_forever()


if __name__ == "__main__":
    main()
