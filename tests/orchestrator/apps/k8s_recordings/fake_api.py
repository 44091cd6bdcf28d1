"""A recorded fake of the Kubernetes API server, for the back end's tests (no cluster here).

``FakeApiServer`` is a real HTTP server on loopback (stdlib, in a thread). In replay mode it
answers the n-th request with the n-th recorded response of a JSON file under
``k8s_recordings/`` and keeps every request it got (method, path with query, content type,
JSON body), so a test can compare them with the recorded ones: the back end must make
exactly the recorded calls, in order. A request that does not match gets a 500 and is kept
too, so the comparison names it.

``ApiModel`` made the recordings: a small in-memory API server (objects by kind, namespace
and name; 409 on a second create, 404 on a missing one; pods and logs as a scenario says).
Set ``WAZIUP_K8S_RECORD=1`` to re-record from it (then read the diff of the JSON files: they
are what a real API server is claimed to say).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDINGS = Path(__file__).parent
CREATED = "2026-01-01T00:00:00Z"

_PATH = re.compile(r"^/(?:api/v1|apis/[^/]+/v1)(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[a-z]+)"
                   r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>[a-z]+))?$")
_KIND = {"namespaces": "Namespace", "configmaps": "ConfigMap", "secrets": "Secret", "services": "Service",
         "deployments": "Deployment", "networkpolicies": "NetworkPolicy", "pods": "Pod"}


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


@dataclass
class ApiModel:
    """The API server's answers, from a state. ``objects``: (plural, namespace, name) ->
    object; ``pods``: deployment name -> pod count; ``logs``: pod -> text; ``vanish``:
    names listed but gone by the time they are deleted (404)."""

    objects: dict[tuple[str, str | None, str], dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, int] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    vanish: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)  # plurals whose creation is refused (403)

    def _pod_list(self, ns: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        pods = []
        for (plural, namespace, name), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0])):
            labels = obj["spec"]["selector"]["matchLabels"] if plural == "deployments" else {}
            if plural != "deployments" or namespace != ns or any(labels.get(k) != v for k, v in selector.items()):
                continue
            for i in range(self.pods.get(name, 0)):
                pods.append({"metadata": {"name": f"{name}-7d9c5-{i}", "namespace": ns, "labels": labels},
                             "status": {"phase": "Running", "containerStatuses": [
                                 {"name": name, "ready": True, "restartCount": i, "state": {"running": {}}}]}})
        return pods

    def _with_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(obj))
        out["metadata"].setdefault("creationTimestamp", CREATED)
        if out["kind"] == "Deployment":
            n = out["spec"].get("replicas", 1)
            out["status"] = {"replicas": n, "readyReplicas": n, "updatedReplicas": n, "availableReplicas": n}
        return out

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        url = urlsplit(path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        m = _PATH.match(url.path)
        if m is None:
            return 404, _status(404, "NotFound", f"no route {url.path}")
        ns, plural, name, sub = m["ns"], m["plural"], m["name"], m["sub"]
        selector = dict(item.split("=", 1) for item in query.get("labelSelector", "").split(",") if item)
        key = (plural, ns, name or "")
        if method == "GET" and name is None:
            if plural == "pods":
                items = self._pod_list(ns or "", selector)
            else:
                items = [self._with_status(obj) for (p, n, _), obj in sorted(self.objects.items(), key=lambda kv: str(kv[0]))
                         if p == plural and (ns is None or n == ns)
                         and all(obj["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
            return 200, {"kind": _KIND[plural] + "List", "apiVersion": "v1", "metadata": {}, "items": items}
        if method == "GET" and sub == "log":
            return 200, self.logs.get(name or "", "")
        if method == "POST":
            if plural in self.forbidden:
                return 403, _status(403, "Forbidden", f"{plural} is forbidden: the user may not create it")
            key = (plural, ns, body["metadata"]["name"])
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f'{plural} "{key[2]}" already exists')
            if plural == "services":  # allocated by the API server, then immutable
                body["spec"]["clusterIP"] = "10.96.0.10"
                body["spec"]["clusterIPs"] = ["10.96.0.10"]
            body["metadata"]["resourceVersion"] = "1"
            self.objects[key] = body
            return 201, self._with_status(body)
        if key not in self.objects or (method == "DELETE" and name in self.vanish):
            self.objects.pop(key, None)
            return 404, _status(404, "NotFound", f'{plural} "{name}" not found')
        if method == "GET":
            return 200, self._with_status(self.objects[key])
        if method == "PUT":
            if plural == "services" and body["spec"].get("clusterIP") != self.objects[key]["spec"]["clusterIP"]:
                return 422, _status(422, "Invalid", "spec.clusterIP: Invalid value: field is immutable")
            body["metadata"]["resourceVersion"] = str(int(self.objects[key]["metadata"]["resourceVersion"]) + 1)
            self.objects[key] = body
            return 200, self._with_status(body)
        if method == "PATCH" and sub == "scale":
            self.objects[key]["spec"]["replicas"] = body["spec"]["replicas"]
            return 200, {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": name, "namespace": ns},
                         "spec": {"replicas": body["spec"]["replicas"]}}
        if method == "PATCH":
            annotations = body["spec"]["template"]["metadata"]["annotations"]
            template = self.objects[key]["spec"]["template"]["metadata"]
            template.setdefault("annotations", {}).update(annotations)
            return 200, self._with_status(self.objects[key])
        if method == "DELETE":
            del self.objects[key]
            return 200, _status(200, "", "deleted") | {"status": "Success"}
        return 405, _status(405, "MethodNotAllowed", method)


class FakeApiServer:
    """Loopback HTTP server answering from a recording (or, recording, from an ``ApiModel``)."""

    def __init__(self, exchanges: list[dict[str, Any]] | None = None, model: ApiModel | None = None) -> None:
        self.exchanges = list(exchanges or [])
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.recorded: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = {"method": self.command, "path": self.path,
                           "contentType": self.headers.get("Content-Type") if raw else None,
                           "body": json.loads(raw) if raw else None}
                status, body = fake.respond(request)
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def respond(self, request: dict[str, Any]) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(request)
            if self.model is not None:
                status, body = self.model.answer(request["method"], request["path"],
                                                 json.loads(json.dumps(request["body"])))  # kept as sent
                self.recorded.append({"request": request, "response": {"status": status, "body": body}})
                return status, body
            if not self.exchanges:
                return 500, _status(500, "Unexpected", "no more recorded requests")
            expected = self.exchanges.pop(0)
            if expected["request"] != request:
                return 500, _status(500, "Unexpected", f"expected {expected['request']}")
            return expected["response"]["status"], expected["response"]["body"]

    def __enter__(self) -> FakeApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def load(name: str) -> list[dict[str, Any]]:
    return list(json.loads((RECORDINGS / f"{name}.json").read_text()))


def save(name: str, exchanges: list[dict[str, Any]]) -> None:
    RECORDINGS.mkdir(exist_ok=True)
    (RECORDINGS / f"{name}.json").write_text(json.dumps(exchanges, indent=1, sort_keys=True) + "\n")
