"""``POST /notices``: an NGSI-v2 notification read into the changes the engine is given.

Pure. The body is Orion's ``{"subscriptionId", "data": [entities]}`` (normalized, as the
rules' subscriptions ask for; keyValues values are accepted too). ``Fiware-ServicePath``
holds one path for every entity, or one per entity joined by commas (Orion's way). A
notified ``alterationType`` attribute (the rules' subscriptions list it) says whether the
entity was deleted; it is not passed on to the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from ngsi.errors import NGSIError
from ngsi.servicepath import parse_scopes

from .errors import BadRequest

MAX_ENTITIES: Final = 10_000
DELETED: Final = "entityDelete"


@dataclass(frozen=True)
class Change:
    service_path: str
    entity: dict[str, Any]
    deleted: bool = False


@dataclass(frozen=True)
class Notice:
    subscription: str
    changes: tuple[Change, ...]


def parse_notice(body: bytes, service_path: str | None) -> Notice:
    """The notice, or BadRequest saying what is wrong with it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the notification is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise BadRequest("the notification must be a JSON object with a data array")
    data = document["data"]
    if len(data) > MAX_ENTITIES:
        raise BadRequest(f"a notification holds at most {MAX_ENTITIES} entities")
    subscription = document.get("subscriptionId", "")
    if not isinstance(subscription, str):
        raise BadRequest("subscriptionId must be a string")
    paths = _paths(service_path, len(data))
    return Notice(subscription, tuple(_change(entity, paths[i], i) for i, entity in enumerate(data)))


def _change(entity: Any, path: str, index: int) -> Change:
    if not isinstance(entity, dict):
        raise BadRequest(f"data[{index}] is not an entity object")
    if not isinstance(entity.get("id"), str) or not entity["id"] or not isinstance(entity.get("type"), str):
        raise BadRequest(f"data[{index}]: an entity needs a non-empty string id and a string type")
    alteration = entity.get("alterationType")
    kind = alteration.get("value") if isinstance(alteration, dict) else alteration
    cleaned = {k: v for k, v in entity.items() if k != "alterationType"}
    return Change(path, cleaned, kind == DELETED)


def _paths(header: str | None, count: int) -> list[str]:
    if header is None or not header.strip():
        return ["/"] * count
    items = [item.strip() for item in header.split(",")]
    paths = []
    for item in items:
        try:
            path, subtree = parse_scopes(item)[0]
        except NGSIError as exc:
            raise BadRequest(f"bad Fiware-ServicePath {item!r}: {exc.description}") from None
        if subtree:
            raise BadRequest(f"bad Fiware-ServicePath {item!r}: a notification names paths, not #")
        paths.append(path)
    if len(paths) == 1:
        return paths * count
    if len(paths) != count:
        raise BadRequest(f"Fiware-ServicePath has {len(paths)} paths for {count} entities")
    return paths
