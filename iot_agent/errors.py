"""Errors as the FIWARE IoT agents render them.

The agents (iotagent-node-lib ``lib/errors.js``, iotagent-ul/json) answer every
failure with ``{"name": <NAME>, "message": <text>}`` and the error's HTTP code
(500 when it has none).  Pure code raises these; the HTTP layer renders them in
one place with ``err.code`` and ``err.body()``.

    IoTAError                          (RUNTIME_ERROR, 500)
     +-- WrongSyntax    = BadRequest   WRONG_SYNTAX            400
     +-- MissingHeaders                MISSING_HEADERS         400
     +-- ParseError                    PARSE_ERROR             400  (every codec)
     +-- BadTimestamp                  BAD_TIMESTAMP           400
     +-- InvalidExpression             INVALID_EXPRESSION      400
     +-- CommandNotFound               COMMAND_NOT_FOUND       400
     +-- DeviceNotFound                DEVICE_NOT_FOUND        404
     +-- GroupNotFound                 GROUP_NOT_FOUND         404
     +-- DeviceGroupNotFound           DEVICE_GROUP_NOT_FOUND  404
     +-- DuplicateDevice               DUPLICATE_DEVICE_ID     409
     +-- DuplicateGroup                DUPLICATE_GROUP         400
     +-- CBRequestError                BAD_REQUEST             400  (the CB refused an update)

Messages follow the agents' wording as we know it (including their missing spaces
after ``:``) so that clients matching on text keep working. Checked against the
project's reference notes (``iot-agents-lora-waziup.md``): the names and codes of
MISSING_HEADERS (400), DUPLICATE_GROUP (400), BAD_TIMESTAMP and the 404 of
``/iot/op/delete``; the message texts are not in the reference and stay unverified
(docs/iot_agent.md lists them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


class IoTAError(Exception):
    """An agent error: ``name`` (stable identifier), ``message``, HTTP ``code``."""

    name: str = "RUNTIME_ERROR"
    code: int = 500

    def __init__(self, message: str, *, name: str | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if name is not None:
            self.name = name
        if code is not None:
            self.code = code

    def body(self) -> dict[str, str]:
        """The JSON body the agents send: ``{"name": ..., "message": ...}``."""
        return {"name": self.name, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.name!r}, {self.message!r})"


class WrongSyntax(IoTAError):
    """A request body or parameter that does not validate (provisioning API)."""

    name = "WRONG_SYNTAX"
    code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"Wrong syntax in request: {detail}")
        self.detail = detail


BadRequest = WrongSyntax
"""The generic 400 of the provisioning API (the agents call it WRONG_SYNTAX)."""


class MissingHeaders(IoTAError):
    """``fiware-service`` / ``fiware-servicepath`` absent on the provisioning API."""

    name = "MISSING_HEADERS"
    code = 400

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = list(missing)
        super().__init__("Some headers were missing from the request: " + json.dumps(self.missing, separators=(",", ":")))


class ParseError(IoTAError):
    """A device payload that a codec cannot read (UL, JSON, CayenneLPP, LoRaWAN...)."""

    name = "PARSE_ERROR"
    code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"There was a syntax error in the received data: {detail}")
        self.detail = detail


class BadTimestamp(IoTAError):
    """A ``TimeInstant`` that is not ISO 8601 while timestamps are on."""

    name = "BAD_TIMESTAMP"
    code = 400

    def __init__(self, payload: Any) -> None:
        super().__init__(f"Invalid ISO8601 timestamp [{payload}]")


class InvalidExpression(IoTAError):
    """A JEXL expression (attribute ``expression``, ``entityNameExp``...) that does not compile."""

    name = "INVALID_EXPRESSION"
    code = 400

    def __init__(self, expression: str) -> None:
        super().__init__(f"Invalid expression in evaluation [{expression}]")


class CommandNotFound(IoTAError):
    name = "COMMAND_NOT_FOUND"
    code = 400

    def __init__(self, command: str) -> None:
        super().__init__(f"Couldn't update the command because no command with the name [{command}] was found.")


class DeviceNotFound(IoTAError):
    name = "DEVICE_NOT_FOUND"
    code = 404

    def __init__(self, device_id: str) -> None:
        super().__init__(f"No device was found with id:{device_id}")
        self.device_id = device_id


class GroupNotFound(IoTAError):
    """No group for a (service, subservice) on PUT/DELETE /iot/groups."""

    name = "GROUP_NOT_FOUND"
    code = 404

    def __init__(self, service: str, subservice: str) -> None:
        super().__init__(f"Group not found for service [{service}] and subservice [{subservice}]")


class DeviceGroupNotFound(IoTAError):
    """No group matches a measure's (apikey, resource): the measure is refused."""

    name = "DEVICE_GROUP_NOT_FOUND"
    code = 404

    def __init__(self, fields: Iterable[str] | None = None, values: Iterable[Any] | None = None) -> None:
        if fields and values:
            msg = f"Couldn't find device group for fields: {list(fields)} and values: {list(values)}"
        elif fields:
            msg = f"Couldn't find device group for fields: {list(fields)}"
        else:
            msg = "Couldn't find device group"
        super().__init__(msg)


class DuplicateDevice(IoTAError):
    name = "DUPLICATE_DEVICE_ID"
    code = 409

    def __init__(self, device_id: str) -> None:
        super().__init__(f"A device with the same pair (Service, DeviceId) was found:{device_id}")
        self.device_id = device_id


DuplicateDeviceId = DuplicateDevice


class DuplicateGroup(IoTAError):
    """A second group on a (resource, apikey) pair: 400, as the reference states
    (node-lib ``doc/api.md`` §Uniqueness), not 409 like DUPLICATE_DEVICE_ID."""

    name = "DUPLICATE_GROUP"
    code = 400

    def __init__(self, resource: str, apikey: str) -> None:
        super().__init__(f"A device configuration already exists for resource {resource} and API Key {apikey}")


class CBRequestError(IoTAError):
    """The Context Broker refused or could not take an update (the agents' BAD_REQUEST)."""

    name = "BAD_REQUEST"
    code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(f"Request error connecting to the Context Broker: {detail}")


__all__ = [
    "IoTAError",
    "WrongSyntax",
    "BadRequest",
    "MissingHeaders",
    "ParseError",
    "BadTimestamp",
    "InvalidExpression",
    "CommandNotFound",
    "DeviceNotFound",
    "GroupNotFound",
    "DeviceGroupNotFound",
    "DuplicateDevice",
    "DuplicateDeviceId",
    "DuplicateGroup",
    "CBRequestError",
]
