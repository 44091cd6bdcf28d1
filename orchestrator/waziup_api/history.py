"""Datapoints in the history service (QuantumLeap's API, ``analytics/history``).

A stored value is handed to the history in the same request that stores it (contract §3:
the history read right after the answer must hold it), as an NGSI notification of the
device entity: the sensor's attribute with the value under its JSON type (so the history
keeps it typed: numbers stay numbers for aggregates and plots), its ``date_received`` as
the time index (``Fiware-TimeIndex-Attribute``; the default sort is by reception), and,
when the client gave one, the ``timestamp`` exactly as posted in a companion attribute
``<sensor>#timestamp`` (``#`` cannot occur in an id, so it never meets a sensor's name).
The history commits before it answers, so an acknowledged value is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ngsi.client import NGSIClient
from ngsi.dates import parse_datetime
from ngsi.release import Block

from .devices import ENTITY_TYPE
from .errors import ApiError
from .values import history_timestamp, iso_ms

STAMP = "#timestamp"
SUBSCRIPTION = "waziup-api"
# what a read does to the history's answer before it becomes datapoints (calibration, privacy)
Prepare = Callable[[list[Block]], Awaitable[list[Block]]]
_TYPES = ((bool, "Boolean"), (int, "Integer"), (float, "Number"), (str, "Text"), (dict, "StructuredValue"),
          (list, "Array"))


def ngsi_type(value: Any) -> str:
    """The NGSI type that keeps ``value``'s JSON type through the history (bool before int:
    a bool is an int in Python)."""
    for kind, name in _TYPES:
        if isinstance(value, kind):
            return name
    return "None"


def notification(device_id: str, sensor_id: str, value: dict[str, Any]) -> dict[str, Any]:
    element: dict[str, Any] = {
        "id": device_id, "type": ENTITY_TYPE,
        sensor_id: {"type": ngsi_type(value["value"]), "value": value["value"],
                    "metadata": {"date_received": {"type": "DateTime", "value": iso_ms(value["date_received"])}}},
    }
    if "timestamp" in value:
        element[sensor_id + STAMP] = {"type": "Text", "value": value["timestamp"]}
    return {"subscriptionId": SUBSCRIPTION, "data": [element]}


@dataclass(frozen=True)
class Window:
    """What ``/sensors_data`` and ``…/values`` ask: sensors of devices, a time range, paging."""

    devices: Sequence[str]
    sensors: Sequence[str] | None  # None: every sensor
    limit: int = 20
    offset: int = 0
    descending: bool = False
    date_from: str | None = None
    date_to: str | None = None


class History:
    def __init__(self, client: NGSIClient, tenant: str) -> None:
        self.client = client
        self.headers = {"Fiware-Service": tenant, "Fiware-ServicePath": "/"}

    async def append(self, device_id: str, sensor_id: str, value: dict[str, Any]) -> None:
        answer = await self.client.send(
            "POST", "/v2/notify", json=notification(device_id, sensor_id, value),
            headers={**self.headers, "Fiware-TimeIndex-Attribute": "date_received"},
        )
        if answer.status_code >= 300:
            raise ApiError(503 if answer.status_code >= 500 else 400,
                           f"the history refused the value ({answer.status_code}): {answer.text[:200]}")

    async def forget(self, device_id: str, sensor_id: str | None = None) -> None:
        """Delete a device's datapoints, or one sensor's (none stored is fine)."""
        params: dict[str, str] = {"type": ENTITY_TYPE}
        if sensor_id is not None:
            params["attrs"] = f"{sensor_id},{sensor_id}{STAMP}"
        answer = await self.client.send("DELETE", f"/v2/entities/{quote(device_id, safe='')}", params=params,
                                        headers=self.headers)
        if answer.status_code >= 300 and answer.status_code != 404:
            raise ApiError(503, f"the history could not delete ({answer.status_code}): {answer.text[:200]}")

    async def datapoints(self, window: Window, sensors_of: dict[str, Sequence[str]], *,
                         prepare: Prepare | None = None) -> list[dict[str, Any]]:
        """The datapoints of ``window``, newest or oldest first, paged; ``sensors_of`` names
        the sensors of each device (what ``None`` in the window means). ``prepare`` gets the
        answer of each device as an ``ngsi.release.Block`` (raw ids, ``date_received`` as the
        index) and returns them in the same order: calibrated, released to the caller."""
        wanted = window.offset + window.limit
        blocks: list[Block] = []
        for device_id in window.devices:
            sensors = list(window.sensors) if window.sensors is not None else list(sensors_of.get(device_id, ()))
            if sensors and wanted > 0:
                block = await self._block(device_id, sensors, window, wanted)
                if block is not None:
                    blocks.append(block)
        present = [_present(block) for block in blocks]  # before a release drops columns
        if prepare is not None and blocks:
            blocks = await prepare(blocks)
        rows: list[tuple[int, dict[str, Any]]] = []
        for block, cells in zip(blocks, present, strict=True):
            rows.extend(_points(block, cells))
        rows.sort(key=lambda row: row[0], reverse=window.descending)
        return [point for _, point in rows[window.offset:wanted]]

    async def _block(self, device_id: str, sensors: Sequence[str], window: Window, wanted: int) -> Block | None:
        params: dict[str, Any] = {"type": ENTITY_TYPE,
                                  "attrs": ",".join(a for s in sensors for a in (s, s + STAMP))}
        if window.descending:
            params["lastN"] = wanted
        else:
            params["limit"] = wanted
        if window.date_from:
            params["fromDate"] = window.date_from
        if window.date_to:
            params["toDate"] = window.date_to
        answer = await self.client.send("GET", f"/v2/entities/{quote(device_id, safe='')}", params=params,
                                        headers=self.headers)
        if answer.status_code == 404:
            return None
        if answer.status_code >= 300:
            raise ApiError(400 if answer.status_code < 500 else 503,
                           f"the history refused the query ({answer.status_code}): {answer.text[:200]}")
        body = answer.json()
        values = {str(a["attrName"]): list(a.get("values") or []) for a in body.get("attributes", [])}
        return Block(device_id, ENTITY_TYPE, "/", list(body.get("index", [])), values)


def _present(block: Block) -> set[tuple[int, str]]:
    """The (row, sensor) cells that hold a datapoint: a value, or a null where no other
    sensor has a value (each stored value is a row of its own; see ``_absent``)."""
    columns = block.values
    return {(row, name) for name, values in columns.items() if not name.endswith(STAMP)
            for row in range(min(len(values), len(block.index)))
            if values[row] is not None or not _absent(columns, name, row)}


def _points(block: Block, present: set[tuple[int, str]]) -> Iterable[tuple[int, dict[str, Any]]]:
    columns = block.values
    for row, instant in enumerate(block.index):
        seconds = parse_datetime(instant) if isinstance(instant, str) else None
        if seconds is None:
            continue
        received = round(seconds * 1000)
        for name, values in columns.items():
            if name.endswith(STAMP) or row >= len(values) or (row, name) not in present:
                continue
            point: dict[str, Any] = {"device_id": block.entity_id, "sensor_id": name, "value": values[row]}
            stamps = columns.get(name + STAMP)
            if stamps is not None and row < len(stamps) and stamps[row] is not None:
                point["timestamp"] = _stamp(stamps[row])
            point["date_received"] = iso_ms(received)
            yield received, point


def _stamp(posted: Any) -> Any:
    """A datapoint's ``timestamp`` as the contract shows it (§1, §3): UTC with ``Z`` and
    milliseconds (``…27.873385`` -> ``…27.873Z``, ``+02:00`` -> ``Z``), one without a fraction
    identical. The history keeps it as posted; one that no longer parses is shown as kept."""
    try:
        return history_timestamp(posted)
    except ValueError:
        return posted


def _absent(columns: dict[str, list[Any]], name: str, row: int) -> bool:
    """A null in a row where another sensor has a value: this sensor was not in that row
    (each stored value is a row of its own). A null where no other has one is a null value."""
    return any(other != name and not other.endswith(STAMP) and row < len(v) and v[row] is not None
               for other, v in columns.items())
