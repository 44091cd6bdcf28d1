"""``POST /v2/notify``: an NGSI-v2 notification, checked and turned into a :class:`Batch`.

Pure: the request's body and headers in, a batch (or a 400) out. What is checked, and
why each check is here rather than left to the database:

* the body is ``{"subscriptionId": "...", "data": [entities]}`` (QuantumLeap's
  ``Notification``); every entity has a string ``id`` and ``type``;
* names (entity id and type, attribute names) are non-empty, at most 256 characters
  (Orion's limit) and without NUL: they are index keys, and PostgreSQL refuses both NUL
  and index entries of kilobytes, which would otherwise turn bad input into a 500;
* ``Fiware-ServicePath`` is one path for every entity, or one per entity (Orion joins
  the entities' paths with commas), each as Orion writes them (``ngsi.servicepath``);
* ``Waziup-Sequence`` (our broker's durable deliveries) is one strictly increasing
  integer per entity, with a ``subscriptionId`` to keep the cursor under.

Each attribute is typed and cast (``values.py``) and each entity gets its time index
(``timeindex.py``).
"""

from __future__ import annotations

import itertools
from typing import Any, Final

import orjson

from ngsi.errors import NGSIError
from ngsi.numbers import parse_uint
from ngsi.servicepath import parse_scopes

from .entity import ENTITY_KEYS, is_normalized
from .errors import BadRequest
from .model import Batch, Element, Sample
from .timeindex import time_index
from .values import cast

MAX_NAME: Final = 256
MAX_SEQUENCE: Final = 2**63 - 1  # a PostgreSQL bigint
MAX_ELEMENTS: Final = 1 << 20  # entities of one notification: a row number keeps 20 bits for them


def parse_notification(
    body: bytes,
    *,
    tenant: str,
    service_path: str | None,
    time_index_attribute: str | None = None,
    sequence: str | None = None,
    now: int,
) -> Batch:
    """The batch of a notification; BadRequest says what is wrong with it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the notification is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the notification must be a JSON object with a data array")
    data = document.get("data")
    if not isinstance(data, list):
        raise BadRequest("the notification has no data array")
    if len(data) > MAX_ELEMENTS:
        raise BadRequest(f"a notification holds at most {MAX_ELEMENTS} entities")
    subscription = document.get("subscriptionId", "")
    if not isinstance(subscription, str) or len(subscription) > MAX_NAME or "\x00" in subscription:
        raise BadRequest("subscriptionId must be a string of at most 256 characters")
    paths = service_paths(service_path, len(data))
    sequences = parse_sequence(sequence, len(data)) if sequence is not None else None
    if sequences is not None and not subscription:
        raise BadRequest("Waziup-Sequence needs the notification's subscriptionId")
    custom = time_index_attribute.strip() if time_index_attribute else None
    elements = tuple(
        _element(entity, paths[i], custom, now, None if sequences is None else sequences[i], i)
        for i, entity in enumerate(data)
    )
    return Batch(tenant, subscription, elements, now, sequenced=sequences is not None)


def _element(entity: Any, path: str, custom: str | None, now: int, sequence: int | None, index: int) -> Element:
    if not isinstance(entity, dict):
        raise BadRequest(f"data[{index}] is not an entity object")
    entity_id, entity_type = entity.get("id"), entity.get("type")
    if not isinstance(entity_id, str) or not isinstance(entity_type, str):
        raise BadRequest(f"data[{index}]: an entity needs a string id and a string type")
    _check_name(entity_id, f"data[{index}].id")
    _check_name(entity_type, f"data[{index}].type")
    samples = []
    for name, raw in entity.items():
        if name in ENTITY_KEYS:
            continue
        if not name or len(name) > MAX_NAME or "\x00" in name:
            _check_name(name, f"data[{index}]: attribute name")
        if is_normalized(raw):
            samples.append(Sample(name, *cast(raw.get("type"), raw["value"])))
        else:
            samples.append(Sample(name, *cast(None, raw)))
    return Element(entity_id, entity_type, path, time_index(entity, custom, now), tuple(samples), sequence)


def _check_name(name: str, what: str) -> None:
    if not name or len(name) > MAX_NAME or "\x00" in name:
        raise BadRequest(f"{what} must be 1 to {MAX_NAME} characters, without NUL")


def service_paths(header: str | None, count: int) -> list[str]:
    """The service path of each of ``count`` entities: the header's one path for all of
    them, or its comma-separated list, one per entity ("/" without a header)."""
    if header is None or not header.strip():
        return ["/"] * count
    items = [item.strip() for item in header.split(",")]
    paths = [_one_path(item) for item in items]
    if len(paths) == 1:
        return paths * count
    if len(paths) != count:
        raise BadRequest(f"Fiware-ServicePath has {len(paths)} paths for {count} entities")
    return paths


def _one_path(item: str) -> str:
    try:
        scopes = parse_scopes(item)
    except NGSIError as exc:
        raise BadRequest(f"bad Fiware-ServicePath {item!r}: {exc.description}") from None
    path, subtree = scopes[0]
    if subtree:
        raise BadRequest(f"bad Fiware-ServicePath {item!r}: a notification names paths, not #")
    return path


def parse_sequence(header: str, count: int) -> list[int]:
    """``Waziup-Sequence: s1,s2,...``: one strictly increasing integer per data element."""
    items = [item.strip() for item in header.split(",")] if header.strip() else []
    numbers = []
    for item in items:
        number = parse_uint(item, cap=MAX_SEQUENCE + 1)
        if number is None or number > MAX_SEQUENCE:
            raise BadRequest(f"Waziup-Sequence: {item[:40]!r} is not an integer between 0 and {MAX_SEQUENCE}")
        numbers.append(number)
    if len(numbers) != count:
        raise BadRequest(f"Waziup-Sequence has {len(numbers)} numbers for {count} entities")
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise BadRequest("Waziup-Sequence numbers must be strictly increasing")
    return numbers
