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
     +-- MissingConfigParams           MISSING_CONFIG_PARAMS   400  (PUT/DELETE group unnamed)
     +-- PayloadTooLarge               REQUEST_TOO_LARGE       413  (body over 1 MiB)
     +-- RequestTimeout                REQUEST_TIMEOUT         408  (body stalled)
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
from typing import Any, ClassVar

from ngsi.errors import ServiceError


class IoTAError(ServiceError):
    """An agent error: ``name`` (stable identifier), ``message``, HTTP ``code``.

    Each kind of error is a subclass declaring its row of the agents' table as class
    keywords: ``name``, ``code`` and the message ``template``, which the arguments the
    error is raised with fill in (``DeviceNotFound("d1")``: "No device was found with
    id:d1"). One constructor serves them all, so a new error is one line of the table.
    ``body()`` and the repr are ``ngsi.errors.ServiceError``'s, as for Orion's errors."""

    FIELDS = ("code", "name", "message")
    name: str = "RUNTIME_ERROR"
    code: int = 500
    message: str
    template: ClassVar[str] = "{}"

    def __init_subclass__(cls, *, name: str = "", code: int = 0, template: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name or cls.name
        cls.code = code or cls.code
        cls.template = template or cls.template

    def __init__(self, *subjects: object, name: str | None = None, code: int | None = None) -> None:
        super().__init__(self.template.format(*subjects), code, name)


class WrongSyntax(IoTAError, name="WRONG_SYNTAX", code=400, template="Wrong syntax in request: {}"):
    """A request body or parameter that does not validate (provisioning API)."""


BadRequest = WrongSyntax
"""The generic 400 of the provisioning API (the agents call it WRONG_SYNTAX)."""


class MissingHeaders(IoTAError, name="MISSING_HEADERS", code=400,
                     template="Some headers were missing from the request: {}"):
    """``fiware-service`` / ``fiware-servicepath`` absent on the provisioning API."""

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = list(missing)
        super().__init__(json.dumps(self.missing, separators=(",", ":")))


class ParseError(IoTAError, name="PARSE_ERROR", code=400,
                 template="There was a syntax error in the received data: {}"):
    """A device payload that a codec cannot read (UL, JSON, CayenneLPP, LoRaWAN...)."""


class BadTimestamp(IoTAError, name="BAD_TIMESTAMP", code=400, template="Invalid ISO8601 timestamp [{}]"):
    """A ``TimeInstant`` that is not ISO 8601 while timestamps are on."""


class InvalidExpression(IoTAError, name="INVALID_EXPRESSION", code=400,
                        template="Invalid expression in evaluation [{}]"):
    """A JEXL expression (attribute ``expression``, ``entityNameExp``...) that does not compile."""


class CommandNotFound(IoTAError, name="COMMAND_NOT_FOUND", code=400,
                      template="Couldn't update the command because no command with the name [{}] was found."):
    """A command the device (or its group) does not declare."""


class DeviceNotFound(IoTAError, name="DEVICE_NOT_FOUND", code=404, template="No device was found with id:{}"):
    """No device of that id in the request's (service, subservice)."""


class GroupNotFound(IoTAError, name="GROUP_NOT_FOUND", code=404,
                    template="Group not found for service [{}] and subservice [{}]"):
    """No group for a (service, subservice) on PUT/DELETE /iot/groups."""


class DeviceGroupNotFound(IoTAError, name="DEVICE_GROUP_NOT_FOUND", code=404):
    """No group matches a measure's (apikey, resource): the measure is refused."""

    def __init__(self, fields: Iterable[str] | None = None, values: Iterable[Any] | None = None) -> None:
        if fields and values:
            msg = f"Couldn't find device group for fields: {list(fields)} and values: {list(values)}"
        elif fields:
            msg = f"Couldn't find device group for fields: {list(fields)}"
        else:
            msg = "Couldn't find device group"
        super().__init__(msg)


class DuplicateDevice(IoTAError, name="DUPLICATE_DEVICE_ID", code=409,
                      template="A device with the same pair (Service, DeviceId) was found:{}"):
    """A device id already provisioned in the (service, subservice)."""


DuplicateDeviceId = DuplicateDevice


class DuplicateGroup(IoTAError, name="DUPLICATE_GROUP", code=400,
                     template="A device configuration already exists for resource {} and API Key {}"):
    """A second group on a (resource, apikey) pair: 400, as the reference states
    (node-lib ``doc/api.md`` §Uniqueness), not 409 like DUPLICATE_DEVICE_ID."""


class MissingConfigParams(IoTAError, name="MISSING_CONFIG_PARAMS", code=400,
                          template="The following parameters were missing from the request: {}"):
    """``PUT``/``DELETE /iot/groups`` without ``resource`` and ``apikey``, which name the
    one group to act on (node-lib ``doc/api.md``: both mandatory; the name and text are
    iotagent-node-lib's ``MissingConfigParams``)."""

    def __init__(self, missing: Iterable[str]) -> None:
        self.missing = list(missing)
        super().__init__(json.dumps(self.missing, separators=(",", ":")))


class PayloadTooLarge(IoTAError, name="REQUEST_TOO_LARGE", code=413,
                      template="payload size: {}, max size supported: {}"):
    """A request body over the agent's limit (the broker's: 1 MiB)."""


class RequestTimeout(IoTAError, name="REQUEST_TIMEOUT", code=408,
                     template="request body not received within {} seconds"):
    """A client that stalled mid-body; the connection is closed after this answer."""


class CBRequestError(IoTAError, name="BAD_REQUEST", code=400,
                     template="Request error connecting to the Context Broker: {}"):
    """The Context Broker refused or could not take an update (the agents' BAD_REQUEST)."""


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
    "MissingConfigParams",
    "PayloadTooLarge",
    "RequestTimeout",
    "CBRequestError",
]
