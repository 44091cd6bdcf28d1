"""A connector's document (JSON or YAML), validated and read into frozen dataclasses.

Pure: no I/O, no environment. Two passes, so that every refusal names the field at fault:
``schema.json`` (jsonschema) checks the shape, then ``_read`` checks what a schema cannot
say (an ``url`` the kind needs, JMESPath that does not compile, attribute names the broker
would refuse, a secret written into the document instead of named by its variable).
The document as given is kept (``Definition.document``): it is what the store holds and
what the API shows back.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import jmespath
import jmespath.exceptions
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ngsi.client.mqtt import topic_filter_problem
from ngsi.names import MAX_NAME_LENGTH, forbidden_id_chars

Kind = Literal["http-json", "csv", "mqtt"]

DEFAULT_INTERVAL: Final = 60.0
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_BATCH: Final = 500
DEFAULT_BACKOFF: Final = (2.0, 600.0)  # (first delay, cap) in seconds after failed runs
DEFAULT_MQTT_FLUSH: Final = 1.0
# Headers that carry credentials: they come from ``auth`` (an environment variable), never from the document.
SECRET_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
RESERVED_ATTRS: Final = frozenset({"id", "type", "TimeInstant"})


class DefinitionError(ValueError):
    """A document that is no valid connector; ``field`` is the dotted path of the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Auth:
    """Credentials named by environment variables: read when the source runs, never stored."""

    scheme: Literal["bearer", "basic", "header"]
    env: str  # the variable holding the token / password / header value
    user: str = ""  # basic
    header: str = ""  # header


@dataclass(frozen=True)
class NextLinkPaging:
    """Follow the URL found at ``next`` (JMESPath over each page) until there is none."""

    next: str
    max_pages: int = 100


@dataclass(frozen=True)
class ParamPaging:
    """Count pages in a query parameter until a page brings no records (or fewer than ``size``)."""

    param: str
    start: int = 1
    size_param: str = ""
    size: int = 0
    max_pages: int = 100


Paging = NextLinkPaging | ParamPaging


@dataclass(frozen=True)
class MqttSettings:
    host: str
    topic: str
    port: int = 1883
    qos: int = 0
    username_env: str = ""
    password_env: str = ""
    tls: bool = False
    flush: float = DEFAULT_MQTT_FLUSH  # seconds records wait before being written in one batch

    @property
    def url(self) -> str:
        """The broker as a destination URL, for the destination policy."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}/"


@dataclass(frozen=True)
class AttrSpec:
    name: str
    value: str  # JMESPath over a record
    type: str = ""  # "": guessed from the value (Number, Boolean, Text, StructuredValue)
    unit_code: str = ""


@dataclass(frozen=True)
class EntitySpec:
    id: str  # JMESPath
    type: str  # JMESPath (a literal: "'WeatherObserved'")
    attrs: tuple[AttrSpec, ...] = ()
    timestamp: str = ""  # JMESPath; "": none


@dataclass(frozen=True)
class Definition:
    name: str
    kind: Kind
    entity: EntitySpec
    url: str = ""
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    enabled: bool = True
    headers: tuple[tuple[str, str], ...] = ()
    auth: Auth | None = None
    paging: Paging | None = None
    records: str = ""  # JMESPath to the list of records; "": the whole document (or payload)
    delimiter: str = ","
    encoding: str = "utf-8"
    mqtt: MqttSettings | None = None
    tenant: str | None = None  # None: the service's default tenant
    service_path: str | None = None
    batch: int = DEFAULT_BATCH
    backoff: tuple[float, float] = DEFAULT_BACKOFF
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def status_id(self) -> str:
        """The id of the ``DataSource`` entity that shows this source's status."""
        return status_entity_id(self.name)

    @property
    def polled(self) -> bool:
        return self.kind != "mqtt"


def status_entity_id(name: str) -> str:
    return f"urn:waziup:source:{name}"


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = json.loads((Path(__file__).parent / "schema.json").read_text())
    return Draft202012Validator(schema)


def load_document(text: str | bytes) -> dict[str, Any]:
    """A document from JSON or YAML text (YAML is read safely: plain data, no tags)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise DefinitionError("", "the document is not UTF-8 text") from None
    try:
        # Aliases are refused: a few lines of them expand to a structure of billions of
        # nodes (the "billion laughs"), and a definition has no use for them.
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise DefinitionError("", "YAML aliases (*name) are not accepted in a definition")
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        raise DefinitionError("", f"the document is neither JSON nor YAML{at}") from None
    if not isinstance(loaded, dict):
        raise DefinitionError("", "the document must be an object (a mapping of fields)")
    try:  # JSON data only: YAML's dates, binaries and non-text keys have no place in a definition
        plain: dict[str, Any] = json.loads(json.dumps(loaded, allow_nan=False))
    except (TypeError, ValueError):
        raise DefinitionError("", "the document must hold JSON data only (no dates, binaries, NaN or "
                                  "compound keys)") from None
    return plain


def parse_definition(document: Mapping[str, Any]) -> Definition:
    """The connector a document declares, or DefinitionError naming the field."""
    error = best_match(_validator().iter_errors(document))
    if error is not None:
        message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        raise DefinitionError(_dotted(error.absolute_path) or "(document)", message)
    return _read(document)


def parse_text(text: str | bytes) -> Definition:
    return parse_definition(load_document(text))


def _dotted(path: Any) -> str:
    return ".".join(str(part) for part in path)


def _expression(where: str, text: str) -> str:
    try:
        jmespath.compile(text)
    except jmespath.exceptions.JMESPathError as exc:
        detail = str(exc).splitlines()[0]
        raise DefinitionError(where, f"not a JMESPath expression ({detail})") from None
    return text


def _identifier(where: str, text: str) -> str:
    if len(text.encode()) > MAX_NAME_LENGTH or forbidden_id_chars(text):
        raise DefinitionError(where, f"{text!r} is not a valid NGSI name (printable ASCII, none of <>\"'=;()&?/#)")
    return text


def _read(doc: Mapping[str, Any]) -> Definition:
    kind: Kind = doc["kind"]
    url = doc.get("url", "")
    if kind in ("http-json", "csv") and not url:
        raise DefinitionError("url", f"a {kind} source needs a url")
    if url:
        _check_url(kind, url)
    if kind == "mqtt" and "mqtt" not in doc:
        raise DefinitionError("mqtt", "an mqtt source needs an mqtt block (host, topic)")
    for block, kinds in (("paging", ("http-json",)), ("mqtt", ("mqtt",)), ("csv", ("csv",))):
        if block in doc and kind not in kinds:
            raise DefinitionError(block, f"only for a {' or '.join(kinds)} source")
    if kind == "csv" and "records" in doc:
        raise DefinitionError("records", "CSV rows are the records: no records expression")
    headers = tuple((str(k), str(v)) for k, v in doc.get("headers", {}).items())
    for name, value in headers:
        if name.lower() in SECRET_HEADERS:
            raise DefinitionError(f"headers.{name}", "credentials go in auth (named by an environment variable)")
        if "\r" in value or "\n" in value or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", name):
            raise DefinitionError(f"headers.{name}", "not a valid HTTP header")
    backoff = doc.get("backoff", {})
    first, cap = float(backoff.get("initial", DEFAULT_BACKOFF[0])), float(backoff.get("max", DEFAULT_BACKOFF[1]))
    if first > cap:
        raise DefinitionError("backoff.initial", "must not exceed backoff.max")
    return Definition(
        name=doc["name"],
        kind=kind,
        entity=_entity(doc["entity"]),
        url=url,
        interval=float(doc.get("interval", DEFAULT_INTERVAL)),
        timeout=float(doc.get("timeout", DEFAULT_TIMEOUT)),
        enabled=bool(doc.get("enabled", True)),
        headers=headers,
        auth=_auth(doc.get("auth")),
        paging=_paging(doc.get("paging")),
        records=_expression("records", doc["records"]) if "records" in doc else "",
        delimiter=doc.get("csv", {}).get("delimiter", ","),
        encoding=_encoding(doc.get("csv", {}).get("encoding", "utf-8")),
        mqtt=_mqtt(doc["mqtt"]) if "mqtt" in doc else None,
        tenant=doc.get("tenant"),
        service_path=doc.get("servicePath"),
        batch=int(doc.get("batch", DEFAULT_BATCH)),
        backoff=(first, cap),
        document=dict(doc),
    )


def _check_url(kind: Kind, url: str) -> None:
    parts = urlsplit(url)
    schemes = ("http", "https") if kind == "http-json" else ("http", "https", "file", "")
    if parts.scheme.lower() not in schemes or (parts.scheme and parts.scheme != "file" and not parts.hostname):
        allowed = "http(s)://" if kind == "http-json" else "http(s)://, file:/// or a path"
        raise DefinitionError("url", f"{url!r} is not a {allowed} URL")
    if parts.username or parts.password:
        raise DefinitionError("url", "credentials go in auth (named by an environment variable), not in the URL")


def _encoding(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise DefinitionError("csv.encoding", f"unknown encoding {name!r}") from None
    return name


def _entity(doc: Mapping[str, Any]) -> EntitySpec:
    attrs = []
    for name, spec in doc.get("attrs", {}).items():
        where = f"entity.attrs.{name}"
        if name in RESERVED_ATTRS:
            raise DefinitionError(where, f"{name!r} is set by the connector itself")
        _identifier(where, name)
        attrs.append(AttrSpec(
            name=name,
            value=_expression(f"{where}.value", spec["value"]),
            type=_identifier(f"{where}.type", spec["type"]) if "type" in spec else "",
            unit_code=spec.get("unitCode", ""),
        ))
    return EntitySpec(
        id=_expression("entity.id", doc["id"]),
        type=_expression("entity.type", doc["type"]),
        attrs=tuple(attrs),
        timestamp=_expression("entity.timestamp", doc["timestamp"]) if "timestamp" in doc else "",
    )


def _auth(doc: Mapping[str, Any] | None) -> Auth | None:
    if doc is None:
        return None
    if "bearer_env" in doc:
        return Auth("bearer", doc["bearer_env"])
    if "basic" in doc:
        return Auth("basic", doc["basic"]["password_env"], user=doc["basic"]["user"])
    if doc["header"].lower() in SECRET_HEADERS - {"authorization"}:
        raise DefinitionError("auth.header", f"{doc['header']!r} cannot carry an API key")
    return Auth("header", doc["value_env"], header=doc["header"])


def _paging(doc: Mapping[str, Any] | None) -> Paging | None:
    if doc is None:
        return None
    if "next" in doc:
        return NextLinkPaging(_expression("paging.next", doc["next"]), doc.get("max_pages", 100))
    if doc.get("size_param") and not doc.get("size"):
        raise DefinitionError("paging.size", "size_param needs a size")
    return ParamPaging(doc["param"], doc.get("start", 1), doc.get("size_param", ""), doc.get("size", 0),
                       doc.get("max_pages", 100))


def _mqtt(doc: Mapping[str, Any]) -> MqttSettings:
    problem = topic_filter_problem(doc["topic"])
    if problem:
        raise DefinitionError("mqtt.topic", problem)
    if doc.get("password_env") and not doc.get("username_env"):
        raise DefinitionError("mqtt.username_env", "a password needs a user name")
    return MqttSettings(
        host=doc["host"], topic=doc["topic"], port=doc.get("port", 8883 if doc.get("tls") else 1883),
        qos=doc.get("qos", 0), username_env=doc.get("username_env", ""), password_env=doc.get("password_env", ""),
        tls=bool(doc.get("tls", False)), flush=float(doc.get("flush", DEFAULT_MQTT_FLUSH)),
    )
