"""Subscriptions as Orion 4.x reads and shows them: payload checks, defaults, rendering.

Pure code. ``parse_subscription`` turns a POST or PATCH payload into (part of) the
canonical subscription dict; ``apply_update`` merges a parsed PATCH into a stored one;
``render_subscription`` gives Orion's GET form.

Canonical dict (the stored form; dates are epoch seconds, ``_``-keys are never shown)::

    {"id", "description"?, "subject": {"entities": [...], "condition": {"attrs": [...],
       "jexlExpression"?, "expression"?: {q, mq, georel, geometry, coords}, "alterationTypes"?,
       "notifyOnMetadataChange": bool}},
     "notification": {"attrs" | "exceptAttrs": [...], "attrsFormat", "http" | "httpCustom" |
       "mqtt" | "mqttCustom": {...}, "metadata"?, "onlyChangedAttrs",
       "covered", "maxFailsLimit"?, "timesSent"?, "lastNotification"?, "lastFailure"?,
       "lastFailureReason"?, "lastSuccess"?, "lastSuccessCode"?, "failsCounter"?},
     "expires"?: float, "status": "active" | "inactive" | "oneshot", "throttling": int,
     "_servicePath": str, "_tenant": str}

Checks run in Orion's order (parseSubscription.cpp): description, subject (entities,
then condition), notification, expires, status, throttling, so that a payload with
several errors gets Orion's first one. Texts the functional tests show are exact; the
few marked "(guess)" appear in no case and are Orion-like wording. Where Orion's manual
(orion-api.md, mqtt_notifications.md) states a rule its cases do not show (a path in an
MQTT URL, empty httpCustom headers, a `{}` condition, Kafka, which this broker cannot send
to), the rule is the manual's (tests/broker/manual/test_subscriptions.py).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ngsi.context import Identity
from ngsi.dates import format_datetime, parse_datetime
from ngsi.errors import BadRequest
from ngsi.geo import parse_geo_expression
from ngsi.model import check_nesting, infer_type
from ngsi.names import MAX_NAME_LENGTH, check_identifier
from ngsi.numbers import parse_uint
from ngsi.query import parse_mq, parse_q
from ngsi.selectors import Texts, parse_selector

from ..jsonio import member

Sub = dict[str, Any]

STATUSES = ("active", "inactive", "oneshot")
# orion-api.md, `subscription.notification` > attrsFormat: any other value is an error
# (``legacy`` was removed in Orion 4.0.0, deprecated.md; ``unique`` is not a notification format).
ATTRS_FORMATS = ("normalized", "keyValues", "values", "simplifiedNormalized", "simplifiedKeyValues")
ALTERATION_TYPES = ("entityCreate", "entityDelete", "entityUpdate", "entityChange")
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT")
CHANNELS = ("http", "httpCustom", "mqtt", "mqttCustom", "kafka", "kafkaCustom")
# The channels this broker sends on: Kafka is refused at creation (no Kafka client here).
SENT_CHANNELS = ("http", "httpCustom", "mqtt", "mqttCustom")
MAX_DESCRIPTION_LENGTH = 1024  # characters (orion-api.md, `subscription`)
MAX_TIMEOUT_MS = 1800000
MIN_EVAL_PRIORITY, MAX_EVAL_PRIORITY = 1, 100000
COUNTERS = ("timesSent", "lastNotification", "lastFailure", "lastFailureReason", "lastSuccess",
            "lastSuccessCode", "failsCounter")
SUBSCRIPTION_NOT_FOUND = "The requested subscription has not been found. Check id"

_FORBIDDEN = re.compile(r"""[<>"'=;()]""")
_FORBIDDEN_IN_HEADER_VALUE = re.compile(r"""[<>=;()]""")
# Orion's forbiddenIdChars (v2): printable ASCII only, no URL delimiters.
_ID_RE = re.compile(r"[0-9a-f]{24}\Z")
_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")


def check_sub_id(sub_id: str) -> None:
    """Orion answers 400 for an id that cannot be a MongoDB ObjectId (1426 double_slash)."""
    if len(sub_id) != 24:
        raise BadRequest("Invalid subscription ID: bad length - 24 chars expected")


def valid_sub_id(sub_id: str) -> bool:
    return _ID_RE.match(sub_id) is not None


# --------------------------------------------------------------------------- JSON type helpers


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _get_string(obj: dict[str, Any], key: str, label: str | None = None) -> str | None:
    return member(obj, key, str, f"{label or key} is not a string")


def _get_bool(obj: dict[str, Any], key: str) -> bool | None:
    return member(obj, key, bool, f"{key} is not a bool")


def _get_int(obj: dict[str, Any], key: str) -> int | None:
    return member(obj, key, int, f"{key} is not an int")


def _string_list(value: Any, name: str) -> list[str]:
    """Orion's parseStringVector with unique items: attrs, exceptAttrs, metadata."""
    if not isinstance(value, list):
        raise BadRequest(f"{name} is not an array")  # (guess)
    seen: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise BadRequest(f"{name} element is not a string")  # (guess)
        if item == "":
            raise BadRequest(f"{name} element is empty")  # (guess)
        if item in seen:
            raise BadRequest(f"duplicated item /{item}/ in array")
        if len(item.encode()) > MAX_NAME_LENGTH:  # orion-api.md, 'Identifiers syntax restrictions'
            kind = "metadata name" if name == "metadata" else "attribute name"
            raise BadRequest(f"{kind} length: {len(item.encode())}, max length supported: {MAX_NAME_LENGTH}")
        seen.append(item)
    return seen


# --------------------------------------------------------------------------- subject


_SELECTOR_TEXTS = Texts(
    not_object="subject entities element is not an object",  # (guess)
    not_string="subject entities element {field} is not a string",
    empty="/entities/ element {field} is empty",
    empty_pattern="/entities/ element {field} is empty",  # (guess)
)


def _parse_entities(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise BadRequest("subject entities is not an array")  # (guess)
    selectors = [parse_selector(item, _SELECTOR_TEXTS) for item in value]
    for selector in selectors:  # orion-api.md, 'Identifiers syntax restrictions': at most 256
        for field in ("id", "type"):
            if field in selector:
                length = len(selector[field].encode())
                if length > MAX_NAME_LENGTH:
                    raise BadRequest(f"entity {field} length: {length}, max length supported: {MAX_NAME_LENGTH}")
    return selectors


def _parse_expression(value: Any) -> dict[str, str]:
    """orion-api.md, `subscription.subject.condition`: ``expression`` and its parts "must have
    content, i.e. {} or "" is not allowed" (texts as Orion's for POST /v2/op/query)."""
    if not isinstance(value, dict):
        raise BadRequest("expression is not an object")
    if not value:
        raise BadRequest("expression is empty")
    expression: dict[str, str] = {}
    for key in ("q", "mq"):
        text = _get_string(value, key)
        if text is None:
            continue
        if text == "":
            raise BadRequest(f"{key} is empty")
        (parse_q if key == "q" else parse_mq)(text)
        expression[key] = text
    if parse_geo_expression(value, context="subscription") is not None:
        for key in ("georel", "geometry", "coords"):
            expression[key] = value[key]
    return expression


def _parse_condition(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("condition is not an object")  # (guess)
    if not value:  # orion-api.md, `subscription.subject`: "{} is not allowed"
        raise BadRequest("condition is empty")  # (guess)
    condition: dict[str, Any] = {"attrs": []}
    if "attrs" in value:
        condition["attrs"] = _string_list(value["attrs"], "attrs")
    if "expression" in value:
        expression = _parse_expression(value["expression"])
        if expression:
            condition["expression"] = expression
    jexl = _get_string(value, "jexlExpression")
    if jexl:
        condition["jexlExpression"] = jexl  # Orion 4.x: beside attrs, not in expression (4555)
    if "alterationTypes" in value:
        types = value["alterationTypes"]
        if not isinstance(types, list):
            raise BadRequest("alterationTypes is not an array")  # (guess)
        for item in types:
            if not isinstance(item, str):
                raise BadRequest("alterationTypes element is not a string")  # (guess)
            if item not in ALTERATION_TYPES:
                raise BadRequest(f"unknown subscription alterationType: {item}")
        condition["alterationTypes"] = list(types)
    notify_md = _get_bool(value, "notifyOnMetadataChange")
    condition["notifyOnMetadataChange"] = True if notify_md is None else notify_md
    return condition


def _parse_subject(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("subject is not an object")  # (guess)
    if "entities" not in value:
        raise BadRequest("no subject entities specified")
    entities = _parse_entities(value["entities"])
    if not entities:
        raise BadRequest("subject entities is empty")
    subject: dict[str, Any] = {"entities": entities}
    if "condition" in value:
        subject["condition"] = _parse_condition(value["condition"])
    else:
        subject["condition"] = {"attrs": [], "notifyOnMetadataChange": True}
    return subject


# --------------------------------------------------------------------------- notification


def valid_hostname(host: str) -> bool:
    """RFC 1123 host names (2280 invalid_hostname_detection), IPv4 and bracketed IPv6."""
    if _IPV6.match(host):
        return True
    if host == "" or len(host) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in host.split("."))


def parse_url(url: str, schemes: tuple[str, ...]) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path) of ``scheme://host[:port][/path]``, else None (Orion's parseUrl)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in schemes:
        return None
    hostport, slash, path = rest.partition("/")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return None
        host, after = hostport[: end + 1], hostport[end + 1 :]
        if after and not after.startswith(":"):
            return None
        port_text = after[1:] if after else None
    else:
        host, colon, port_text_raw = hostport.partition(":")
        port_text = port_text_raw if colon else None
    if not valid_hostname(host):
        return None
    defaults = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883, "kafka": 9092}
    if port_text is None:
        port = defaults.get(scheme.lower(), 80)
    else:
        port = parse_uint(port_text, cap=65536)  # ASCII digits only, never converted in full
        if port is None or not 0 < port <= 65535:
            return None
    return scheme.lower(), host, port, "/" + path if slash else "/"


def _timeout(obj: dict[str, Any], target: dict[str, Any]) -> None:
    if "timeout" not in obj:
        return
    value = obj["timeout"]
    if not _is_int(value):
        raise BadRequest("timeout is not an int")
    if not 0 <= value <= MAX_TIMEOUT_MS:
        raise BadRequest(f"timeout field must be an integer between 0 and {MAX_TIMEOUT_MS}")
    if value > 0:
        target["timeout"] = int(value)


def _channel_url(value: Any, channel: str) -> str:
    """The ``url`` every notification channel (http, httpCustom, mqtt...) must have, after
    the checks all make alike; ``value`` is the channel's member of ``notification``."""
    if not isinstance(value, dict):
        raise BadRequest(f"{channel} notification is not an object")  # (guess)
    if "url" not in value:
        raise BadRequest(f"url {channel} notification is missing")  # (guess) for kafka
    url = _get_string(value, "url", f"url {channel} notification")
    assert url is not None
    return url


def _parse_http(value: Any) -> dict[str, Any]:
    url = _channel_url(value, "http")
    if _FORBIDDEN.search(url):
        raise BadRequest("forbidden characters in http field /url/")
    if parse_url(url, ("http", "https")) is None:
        raise BadRequest("Invalid URL parsing notification url")
    http: dict[str, Any] = {"url": url}
    _timeout(value, http)
    return http


def _string_dict(value: Any, channel: str, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadRequest(f"{field} {channel} notification is not an object")  # (guess)
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise BadRequest(f"{field} {channel} notification element is not a string")  # (guess)
        # 'General syntax restrictions': "HTTP and Kafka custom header values allow the ' and "
        # quote characters to support quoted string literals in JEXL expressions".
        in_value = _FORBIDDEN_IN_HEADER_VALUE if field == "headers" else _FORBIDDEN
        if _FORBIDDEN.search(key) or in_value.search(item):
            raise BadRequest(f"forbidden characters in custom notification {channel} {field}")
        if field == "headers" and (_NOT_IN_HEADER_NAME.search(key) or _CONTROL.search(item)):
            # written into the request as they are: CR/LF would make more headers, or another request
            raise BadRequest(f"invalid header in custom notification {channel} {field}: control characters, "
                             "blanks or colons in a name, control characters in a value")
        result[key] = item
    return result


# A header name is a token (macros ``${...}`` allowed: resolved at send time, then checked
# again by the HTTP client); a value any text but control characters (tab allowed).
_NOT_IN_HEADER_NAME = re.compile(r"[\x00-\x20\x7f:]")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _parse_ngsi(value: Any) -> dict[str, Any]:
    """The ``ngsi`` entity template: attributes get default types as in entity creation."""
    if not isinstance(value, dict):
        raise BadRequest("ngsi field in httpCustom, mqttCustom or kafkaCustom must be an object")  # (guess)
    result: dict[str, Any] = {}
    for key in ("id", "type"):
        if key in value:
            if not isinstance(value[key], str):
                raise BadRequest(f"Invalid JSON type for entity {key}")
            result[key] = value[key]
    for name, attr in value.items():
        if name in ("id", "type"):
            continue
        # orion-api.md, 'NGSI payload patching': "a valid JSON Entity Representation", whose
        # attribute names and types follow 'Identifiers syntax restrictions' (forbidden
        # characters are allowed in id, type and values only, 'General syntax restrictions').
        check_identifier("attribute name", name)
        if not isinstance(attr, dict):
            raise BadRequest("attribute must be a JSON object, unless keyValues option is used")
        attr_value = attr.get("value")
        attr_type = attr.get("type")
        if attr_type is None:
            attr_type = infer_type(attr_value)
        elif not isinstance(attr_type, str):
            raise BadRequest("invalid JSON type for attribute type")
        else:
            check_identifier("attribute type", attr_type)
        check_nesting(attr_value)
        rendered: dict[str, Any] = {"type": attr_type, "value": attr_value}
        if "metadata" in attr:
            metadata = attr["metadata"]
            if not isinstance(metadata, dict):
                raise BadRequest("metadata must be a JSON object")
            md_out: dict[str, Any] = {}
            for md_name, md in metadata.items():
                md_value = md.get("value") if isinstance(md, dict) else md
                md_type = md.get("type") if isinstance(md, dict) else None
                if md_type is None:
                    md_type = infer_type(md_value)
                if md_name == "evalPriority":
                    _check_eval_priority(md_value)
                check_nesting(md_value)
                md_out[md_name] = {"type": md_type, "value": md_value}
            if md_out:
                rendered["metadata"] = md_out
        result[name] = rendered
    return result


def _check_eval_priority(value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise BadRequest("evalPriority metadata must be a number")
    if value < MIN_EVAL_PRIORITY:
        raise BadRequest(f"evalPriority metadata minimum priority is {MIN_EVAL_PRIORITY}")
    if value > MAX_EVAL_PRIORITY:
        raise BadRequest(f"evalPriority metadata maximum priority is {MAX_EVAL_PRIORITY}")


def _parse_custom_payload(value: dict[str, Any], custom: dict[str, Any]) -> None:
    given = [key for key in ("payload", "json", "ngsi") if key in value]
    if len(given) > 1:
        raise BadRequest(
            "only one of payload, json or ngsi fields accepted at the same time in httpCustom, mqttCustom or kafkaCustom"
        )
    if "payload" in value:
        payload = value["payload"]
        if payload is None:
            custom["payload"] = None  # null: notifications without a body (3272)
        elif not isinstance(payload, str):
            raise BadRequest("payload is not a string")  # (guess)
        elif payload != "":
            if _FORBIDDEN.search(payload):
                raise BadRequest("forbidden characters in custom /payload/")
            custom["payload"] = payload
    elif "json" in value:
        if not isinstance(value["json"], (dict, list)):
            raise BadRequest("json fields in httpCustom, mqttCustom or kafkaCustom must be object or array")
        check_nesting(value["json"])
        custom["json"] = copy.deepcopy(value["json"])
    elif "ngsi" in value:
        custom["ngsi"] = _parse_ngsi(value["ngsi"])


def _parse_http_custom(value: Any) -> dict[str, Any]:
    url = _channel_url(value, "httpCustom")
    if _FORBIDDEN.search(url):
        raise BadRequest("forbidden characters in custom /url/")
    # A URL with macros is known only at notification time (2280 custom_url_validity_check).
    if "${" not in url and parse_url(url, ("http", "https")) is None:
        raise BadRequest("invalid custom /url/")
    custom: dict[str, Any] = {"url": url}
    if "method" in value:
        method = _get_string(value, "method", "method httpCustom notification")
        assert method is not None
        if method.upper() not in HTTP_METHODS:
            raise BadRequest("unknown method httpCustom notification")
        custom["method"] = method.upper()
    for field in ("headers", "qs"):
        if field in value:
            items = _string_dict(value[field], "httpCustom", field)
            if not items:  # orion-api.md, `subscription.notification.httpCustom`: "Must not be empty"
                raise BadRequest(f"{field} httpCustom notification is empty")  # (guess)
            custom[field] = items
    _parse_custom_payload(value, custom)
    _timeout(value, custom)
    return custom


def _parse_mqtt(value: Any, channel: str) -> dict[str, Any]:
    """mqtt / mqttCustom (Orion's parseMqtt*): url, topic, qos, retain, user+passwd.

    Stored with qos and retain filled in, in the order GET shows them (url, topic, qos,
    retain, user, passwd, then the custom payload).
    """
    url = _channel_url(value, channel)
    if _FORBIDDEN.search(url):
        raise BadRequest("forbidden characters in mqtt field /url/")  # (guess)
    parsed = parse_url(url, ("mqtt", "mqtts"))
    if parsed is None:
        raise BadRequest("Invalid URL parsing notification url")
    if parsed[3] != "/":  # mqtt_notifications.md: the URL "never contains a path"
        raise BadRequest(f"path not allowed in {channel} url: it only includes host and port")  # (guess)
    if channel == "mqttCustom":
        http_only = [key for key in ("headers", "qs", "method") if key in value]
        if http_only:  # mqtt_notifications.md, 'Custom notifications'
            raise BadRequest(f"{', '.join(http_only)} cannot be used in mqttCustom: no equivalence in MQTT")  # (guess)
    if "topic" not in value:
        raise BadRequest(f"topic {channel} notification is missing")
    topic = _get_string(value, "topic", f"topic {channel} notification")
    assert topic is not None
    if topic == "":
        raise BadRequest("mqtt topic is empty")  # (guess)
    if "+" in topic or "#" in topic:  # subscription wildcards: no message can be published there
        raise BadRequest("forbidden characters in mqtt /topic/")  # (guess)
    mqtt: dict[str, Any] = {"url": url, "topic": topic}
    qos = _get_int(value, "qos")
    if qos is not None and qos not in (0, 1, 2):
        raise BadRequest("mqtt qos field must be an integer in the 0 to 2 range")
    mqtt["qos"] = qos or 0
    retain = _get_bool(value, "retain")
    mqtt["retain"] = bool(retain)
    if ("user" in value) != ("passwd" in value):
        raise BadRequest("you must use user and passwd fields simultaneously")
    for key in ("user", "passwd"):
        text = _get_string(value, key, f"{key} {channel} notification")
        if text is not None:
            mqtt[key] = text
    if channel == "mqttCustom":
        _parse_custom_payload(value, mqtt)
    return mqtt


def _parse_notification(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest("notification is not an object")  # (guess)
    channels = [key for key in CHANNELS if key in value]
    if len(channels) > 1:
        raise BadRequest("only one of http, httpCustom, mqtt, mqttCustom, kafka or kafkaCustom is allowed")
    if not channels:
        raise BadRequest("http, httpCustom, mqtt, mqttCustom, kafka or kafkaCustom is missing")
    channel = channels[0]
    notification: dict[str, Any] = {}
    if channel == "http":
        endpoint = _parse_http(value["http"])
    elif channel == "httpCustom":
        endpoint = _parse_http_custom(value["httpCustom"])
    elif channel in ("mqtt", "mqttCustom"):
        endpoint = _parse_mqtt(value[channel], channel)
    else:  # refused rather than kept: a subscription that can never notify would fail silently
        raise BadRequest(f"{channel} notifications are not supported by this broker (http, httpCustom, mqtt "
                         "and mqttCustom are)")
    if "attrs" in value and "exceptAttrs" in value:
        raise BadRequest("http notification has attrs and exceptAttrs")
    if "exceptAttrs" in value:
        except_attrs = _string_list(value["exceptAttrs"], "exceptAttrs")
        if not except_attrs:
            raise BadRequest("http notification has exceptAttrs is empty")
        notification["exceptAttrs"] = except_attrs
    else:
        notification["attrs"] = _string_list(value["attrs"], "attrs") if "attrs" in value else []
    attrs_format = _get_string(value, "attrsFormat")
    if attrs_format is not None and attrs_format not in ATTRS_FORMATS:
        raise BadRequest("invalid attrsFormat (accepted values: normalized, keyValues, values, "
                         "simplifiedNormalized, simplifiedKeyValues)")  # (guess)
    notification["attrsFormat"] = attrs_format or "normalized"
    notification[channel] = endpoint
    if "metadata" in value:
        metadata = _string_list(value["metadata"], "metadata")
        if metadata:
            notification["metadata"] = metadata
    only_changed = _get_bool(value, "onlyChangedAttrs")
    notification["onlyChangedAttrs"] = bool(only_changed)
    covered = _get_bool(value, "covered")
    if covered and not notification.get("attrs"):
        raise BadRequest("covered true cannot be used if notification attributes list is empty")
    notification["covered"] = bool(covered)
    max_fails = _get_int(value, "maxFailsLimit")
    if max_fails is not None:
        if max_fails <= 0:
            raise BadRequest("maxFailsLimit must be greater than zero")
        notification["maxFailsLimit"] = max_fails
    return notification


# --------------------------------------------------------------------------- whole payload


def parse_subscription(body: Any, *, update: bool = False) -> Sub:
    """A POST payload as a canonical subscription (without id, service path, tenant) or,
    with ``update``, the top-level parts a PATCH gives (to merge with ``apply_update``).

    Raises BadRequest with Orion's texts; nothing else, whatever the JSON.
    """
    if not isinstance(body, dict):
        raise BadRequest("Errors found in incoming JSON buffer", error="ParseError")
    if not body:
        raise BadRequest("empty payload")
    sub: Sub = {}
    description = _get_string(body, "description")
    if description is not None:
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise BadRequest("max description length exceeded")  # (guess)
        if _FORBIDDEN.search(description):
            raise BadRequest("forbidden characters in description")  # (guess)
        sub["description"] = description
    if "subject" in body:
        sub["subject"] = _parse_subject(body["subject"])
    elif not update:
        raise BadRequest("no subject for subscription specified")  # (guess)
    if "notification" in body:
        sub["notification"] = _parse_notification(body["notification"])
    elif not update:
        raise BadRequest("no notification for subscription specified")  # (guess)
    if "expires" in body:
        expires = body["expires"]
        if not isinstance(expires, str):
            raise BadRequest("expires is not a string")
        if expires == "":
            sub["expires"] = None  # permanent again (1949_permanent_get)
        else:
            seconds = parse_datetime(expires)
            if seconds is None:
                raise BadRequest("expires has an invalid format")
            sub["expires"] = float(int(seconds // 1))  # Orion keeps whole seconds
    status = _get_string(body, "status")
    if status is not None:
        if status not in STATUSES:
            raise BadRequest("status is not valid: it has to be either active, inactive or oneshot")
        sub["status"] = status
    if "throttling" in body:
        throttling = body["throttling"]
        if not _is_int(throttling):
            raise BadRequest("throttling is not an int")  # (guess)
        if throttling < 0:
            raise BadRequest("throttling cannot be negative")  # (guess)
        sub["throttling"] = int(throttling)
    if not update:
        sub.setdefault("status", "active")
        sub.setdefault("throttling", 0)
        if sub.get("expires", 0) is None:
            del sub["expires"]
    return sub


def apply_update(stored: Sub, patch: Sub) -> Sub:
    """The stored subscription with a parsed PATCH applied: each given part replaces the
    stored one whole (2163: a new notification resets attrsFormat), counters stay."""
    result = copy.deepcopy(stored)
    for key, value in patch.items():
        if key == "expires" and value is None:
            result.pop("expires", None)
        elif key == "notification":
            counters = {k: v for k, v in result.get("notification", {}).items() if k in COUNTERS}
            result["notification"] = {**copy.deepcopy(value), **counters}
        else:
            result[key] = copy.deepcopy(value)
    return result


# --------------------------------------------------------------------------- rendering


def effective_status(sub: Sub, now: float) -> str:
    """What GET shows: "expired" once ``expires`` has passed, whatever the stored status."""
    expires = sub.get("expires")
    if expires is not None and expires < now:
        return "expired"
    return str(sub.get("status", "active"))


def _render_notification(notification: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("timesSent", "lastNotification"):
        if notification.get(key):
            out[key] = format_datetime(notification[key]) if key == "lastNotification" else notification[key]
    if "exceptAttrs" in notification:
        out["exceptAttrs"] = list(notification["exceptAttrs"])
    else:
        out["attrs"] = list(notification.get("attrs", []))
    out["attrsFormat"] = notification.get("attrsFormat", "normalized")
    for channel in CHANNELS:
        if channel in notification:
            out[channel] = copy.deepcopy(notification[channel])
            if channel in ("mqtt", "mqttCustom"):
                out[channel] = _render_mqtt(notification[channel])
    if notification.get("metadata"):
        out["metadata"] = list(notification["metadata"])
    if notification.get("lastFailure"):
        out["lastFailure"] = format_datetime(notification["lastFailure"])
    if notification.get("lastFailureReason"):
        out["lastFailureReason"] = notification["lastFailureReason"]
    if notification.get("lastSuccess"):
        out["lastSuccess"] = format_datetime(notification["lastSuccess"])
    if notification.get("lastSuccessCode") is not None:
        out["lastSuccessCode"] = notification["lastSuccessCode"]
    if notification.get("failsCounter"):
        out["failsCounter"] = notification["failsCounter"]
    if notification.get("maxFailsLimit"):
        out["maxFailsLimit"] = notification["maxFailsLimit"]
    out["onlyChangedAttrs"] = bool(notification.get("onlyChangedAttrs", False))
    out["covered"] = bool(notification.get("covered", False))
    return out


def _render_mqtt(mqtt: dict[str, Any]) -> dict[str, Any]:
    """Orion's MqttInfo::toJson: qos and retain always, the password never in clear."""
    out: dict[str, Any] = {"url": mqtt.get("url", ""), "topic": mqtt.get("topic", ""),
                           "qos": mqtt.get("qos", 0), "retain": bool(mqtt.get("retain", False))}
    if "user" in mqtt:
        out["user"] = mqtt["user"]
        out["passwd"] = "*****"
    for key in ("payload", "json", "ngsi"):
        if key in mqtt:
            out[key] = copy.deepcopy(mqtt[key])
    return out


def _render_subject(subject: dict[str, Any]) -> dict[str, Any]:
    entities = [copy.copy(e) for e in subject.get("entities", [])]
    condition = subject.get("condition", {})
    rendered_condition: dict[str, Any] = {"attrs": list(condition.get("attrs", []))}
    if condition.get("jexlExpression"):
        rendered_condition["jexlExpression"] = condition["jexlExpression"]
    if condition.get("expression"):
        rendered_condition["expression"] = dict(condition["expression"])
    if condition.get("alterationTypes"):
        rendered_condition["alterationTypes"] = list(condition["alterationTypes"])
    rendered_condition["notifyOnMetadataChange"] = bool(condition.get("notifyOnMetadataChange", True))
    return {"entities": entities, "condition": rendered_condition}


def render_subscription(sub: Sub, now: float) -> dict[str, Any]:
    """Orion's GET /v2/subscriptions/{id} object, keys in Orion's order."""
    out: dict[str, Any] = {"id": sub["id"]}
    if sub.get("description"):
        out["description"] = sub["description"]
    out["subject"] = _render_subject(sub.get("subject", {}))
    out["notification"] = _render_notification(sub.get("notification", {}))
    if sub.get("expires") is not None:
        out["expires"] = format_datetime(sub["expires"])
    out["status"] = effective_status(sub, now)
    if sub.get("throttling"):
        out["throttling"] = sub["throttling"]
    return out


def destination_urls(doc: Sub) -> list[str]:
    """The URLs a subscription (or a PATCH of one) sends to: what the destination policy checks."""
    notification = doc.get("notification") or {}
    urls = []
    for channel in SENT_CHANNELS:
        target = notification.get(channel)
        if isinstance(target, dict) and isinstance(target.get("url"), str):
            urls.append(target["url"])
    return urls


def owner_of(identity: Identity) -> dict[str, Any] | None:
    """The creator a subscription keeps (None when anonymous): who its notifications are
    for, so that they never carry what that creator may not read (``Notifier.visibility``)."""
    if identity.anonymous:
        return None
    return {
        "user_id": identity.user_id, "app_id": identity.app_id,
        "roles": list(identity.roles), "organizations": list(identity.organizations),
    }
