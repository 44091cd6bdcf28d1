"""HTTP push: a command POSTed to the device's ``endpoint``; the device's answer is the result.

The request goes out through the agent's one outbound HTTP client (``ngsi.client``,
``NGSIClient.send``: keep-alive, no redirects followed; ``device_poster``); what the
answer means is the pure ``answer_statuses``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ngsi.client import NGSIClient
from ngsi.client.http11 import DestinationRefused
from ngsi.destinations import Gate

from ..device import JSON, fiware_headers, payload_format
from ..errors import ParseError
from .payload import command_payload, parse_results
from .status import ERROR, OK, SetStatus

Doc = dict[str, Any]
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class DeviceAnswer:
    status: int
    content: bytes
    text: str


# (url, body, headers) -> the device's answer; raises when the device cannot be reached
Post = Callable[[str, bytes, dict[str, str]], Awaitable[DeviceAnswer]]


def device_poster(client: NGSIClient, gate: Gate | None = None) -> Post:
    """POST commands to devices through ``client`` (absolute URLs: none of the client's own
    headers or credentials go to the device), where the destination policy allows."""

    async def post(url: str, body: bytes, headers: dict[str, str]) -> DeviceAnswer:
        if gate is not None:
            decision = await gate.check(url)
            if not decision.allowed:
                raise DestinationRefused(decision.failure)
        response = await client.send("POST", url, headers=headers, body=body, timeout=TIMEOUT_SECONDS)
        return DeviceAnswer(response.status_code, response.content, response.text)

    return post


def answer_statuses(device: Doc, group: Doc | None, name: str, answer: DeviceAnswer) -> list[tuple[str, str, Any]]:
    """(command, status, info) to write for a device's answer to command ``name``: a refusal
    is ERROR, else OK with each result it carries (its text when it is not a result)."""
    if answer.status >= 300:
        return [(name, ERROR, f"device answered {answer.status}")]
    try:
        results = parse_results(device, group, answer.content) if answer.content else [(name, "")]
    except ParseError:
        results = [(name, answer.text)]
    return [(command, OK, result) for command, result in results]


class HttpPush:
    """A ``Deliver`` for devices with an endpoint (theirs or their group's)."""

    def __init__(self, set_status: SetStatus, post: Post) -> None:
        self.set_status = set_status
        self.post = post

    async def __call__(self, device: Doc, group: Doc | None, name: str, value: Any) -> None:
        endpoint = device.get("endpoint") or (group or {}).get("endpoint")
        is_json = payload_format(device, group) == JSON
        headers = {"content-type": "application/json" if is_json else "text/plain", **fiware_headers(device)}
        answer = await self.post(str(endpoint), command_payload(device, group, name, value), headers)
        for command, status, info in answer_statuses(device, group, name, answer):
            await self.set_status(device, group, command, status, info)
