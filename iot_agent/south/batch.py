"""Measures of many devices to the context broker in few requests.

Every transport hands the entities of one reading (a *unit*: what the agent sent in one
request before) to ``Batcher.submit``. Units wait in a *lane*: units of the same broker,
tenant (``Fiware-Service``/``-ServicePath``) and ``flowControl`` flag, and of devices that
hash to it. A lane has at most one request in flight; while it is out, the units that
arrive pile up and leave together as soon as it returns. So at a low rate each unit goes
out alone, at once, and at a high rate the batches grow by themselves, without a timer.

* One unit is sent exactly as before: one entity as ``POST /v2/entities?options=upsert``,
  several as ``POST /v2/op/update`` ``append``. Several units are one ``POST
  /v2/op/update`` ``append`` with all their entities in order. An append leaves an entity
  as an upsert does (creates it, or adds/overwrites the attributes sent), and the broker
  applies the entities of a batch one after the other, so each entity ends as it would
  have with one request per unit, and the broker notifies once per entity, as before.
* Order: a device always uses the same lane, and a lane sends one request at a time, in
  arrival order, so a device's readings reach the broker in the order they came.
* Failures: a 4xx answer to a batch may come from a single bad unit (an attribute name
  the broker refuses...): the broker then checked the whole payload and wrote nothing,
  so each unit is sent again on its own and gets its own answer. A connection failure or
  a 5xx fails every unit of the batch with that error. Each failure is logged per device
  and, for callers that wait (HTTP south answers only after the broker accepted), raised
  as ``CBRequestError``.
* At most ``max_in_flight`` requests are out at once, over all lanes; a batch holds at
  most ``max_entities`` entities and about ``max_bytes`` of JSON (the broker's request
  limit is 1 MB).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ngsi.client.credentials import AuthError, Credentials
from ngsi.client.http11 import HTTPError

from ..errors import CBRequestError

log = logging.getLogger("waziup.iot_agent.south")

Doc = dict[str, Any]
# (status, body) of a POST; status 0 and the reason as body when the broker was not reached
Poster = Callable[[str, dict[str, str], bytes], Awaitable[tuple[int, bytes]]]
StreamKey = tuple[str, str | None, str | None, bool, int]

UPSERT = "/v2/entities?options=upsert"
APPEND = "/v2/op/update"


@dataclass
class Unit:
    entities: list[Doc]
    label: str  # the device, for the logs
    future: asyncio.Future[None] | None
    body: bytes = b""  # the unit's entities as JSON array items, joined by commas


@dataclass
class _Lane:
    pending: list[Unit] = field(default_factory=list)
    busy: bool = False


def error_text(status: int, body: bytes) -> str:
    """The broker's answer as the NGSI client words its errors (``400 BadRequest: ...``)."""
    if status == 0:
        return f"0 ConnectionError: {body.decode('utf-8', 'replace')}"
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        description = doc.get("description")
        description = description if isinstance(description, str) else ""
        return f"{status} {doc['error']}: {description}" if description else f"{status} {doc['error']}"
    text = body.decode("utf-8", "replace")
    return f"{status} Error: {text}" if text else f"{status} Error"


class Batcher:
    def __init__(self, post: Poster, *, lanes: int = 2, max_in_flight: int = 8, max_entities: int = 500, max_bytes: int = 512 * 1024) -> None:
        self.post = post
        self.lanes = max(1, lanes)
        self.max_entities = max_entities
        self.max_bytes = max_bytes
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None
        self._lanes: dict[StreamKey, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0  # requests sent, for tests and benchmarks
        self.batched = 0  # of which batches of several units

    def submit(
        self,
        base_url: str,
        service: str | None,
        service_path: str | None,
        flow_control: bool,
        order_key: Any,
        entities: list[Doc],
        label: str,
        *,
        wait: bool = True,
    ) -> asyncio.Future[None] | None:
        """Queue one unit; with ``wait`` a future that ends when the broker accepted it (or raises)."""
        future = asyncio.get_running_loop().create_future() if wait else None
        unit = Unit(entities, label, future, b",".join(map(orjson.dumps, entities)))
        key = (base_url, service, service_path, flow_control, hash(order_key) % self.lanes)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.pending.append(unit)
        if not lane.busy:
            lane.busy = True
            # started on the next turn of the loop: units arriving in this one join the batch
            task = asyncio.get_running_loop().create_task(self._drain(key, lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return future

    async def idle(self) -> None:
        """Wait until everything submitted has been answered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout: float = 5.0) -> None:
        """Let the queued readings go out for at most ``timeout`` s, then drop the rest."""
        try:
            await asyncio.wait_for(self.idle(), timeout)
        except asyncio.TimeoutError:
            dropped = sum(len(lane.pending) for lane in self._lanes.values())
            log.warning("stopping with %d readings not sent to the context broker", dropped)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _drain(self, key: StreamKey, lane: _Lane) -> None:
        try:
            while lane.pending:
                units = self._take(lane)
                if self._slots is None:
                    await self._send(key, units)
                else:
                    async with self._slots:
                        await self._send(key, units)
        finally:
            lane.busy = False
            if not lane.pending and self._lanes.get(key) is lane:
                del self._lanes[key]

    def _take(self, lane: _Lane) -> list[Unit]:
        pending = lane.pending
        count = size = 0
        taken = 0
        for unit in pending:
            if taken and (count + len(unit.entities) > self.max_entities or size + len(unit.body) > self.max_bytes):
                break
            taken += 1
            count += len(unit.entities)
            size += len(unit.body) + 1
        units = pending[:taken]
        del pending[:taken]
        return units

    def _headers(self, key: StreamKey) -> dict[str, str]:
        _, service, service_path, _, _ = key
        headers = {"Content-Type": "application/json"}
        if service is not None:
            headers["Fiware-Service"] = service
        if service_path is not None:
            headers["Fiware-ServicePath"] = service_path
        return headers

    async def _send(self, key: StreamKey, units: list[Unit]) -> None:
        if len(units) == 1:
            await self._send_alone(key, units[0])
            return
        base_url, _, _, flow, _ = key
        url = base_url + APPEND + ("?options=flowControl" if flow else "")
        body = b'{"actionType":"append","entities":[' + b",".join(u.body for u in units) + b"]}"
        status, answer = await self._post(url, self._headers(key), body)
        self.batched += 1
        if 200 <= status < 300:
            for unit in units:
                _done(unit)
        elif 400 <= status < 500:
            log.info("the context broker refused a batch of %d readings (%s): sending them one by one",
                     len(units), error_text(status, answer))
            for unit in units:
                await self._send_alone(key, unit)
        else:
            for unit in units:
                _failed(unit, error_text(status, answer))

    async def _send_alone(self, key: StreamKey, unit: Unit) -> None:
        """As the agent sent a reading before batching: upsert one entity, append several."""
        base_url, _, _, flow, _ = key
        if len(unit.entities) == 1:
            url = base_url + UPSERT + (",flowControl" if flow else "")
            body = unit.body
        else:
            url = base_url + APPEND + ("?options=flowControl" if flow else "")
            body = b'{"actionType":"append","entities":[' + unit.body + b"]}"
        status, answer = await self._post(url, self._headers(key), body)
        if 200 <= status < 300:
            _done(unit)
        else:
            _failed(unit, error_text(status, answer))

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        self.requests += 1
        try:
            return await self.post(url, headers, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the poster reports transport failures as status 0; anything else too
            return 0, f"{url}: {exc!r}".encode()


def _done(unit: Unit) -> None:
    if unit.future is not None and not unit.future.done():
        unit.future.set_result(None)


def _failed(unit: Unit, text: str) -> None:
    log.warning("the context broker refused measures of %s: %s", unit.label, text)
    if unit.future is not None and not unit.future.done():
        unit.future.set_exception(CBRequestError(text))


def http11_poster(client: Any, timeout: float = 10.0, credentials: Credentials | None = None) -> Poster:
    """A Poster over ``ngsi.client.http11.HTTPClient`` (keep-alive, no per-request objects);
    with ``credentials`` (a broker behind a PEP) each batch carries the token, and a 401
    fetches a new one for one more try."""

    async def post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        sent = list(headers.items())
        for attempt in (0, 1):
            try:
                auth = await credentials.headers() if credentials is not None else []
                response = await client.request("POST", url, sent + auth, body, timeout=timeout)
            except HTTPError as exc:
                return 0, f"POST {url}: {exc}".encode()
            except AuthError as exc:
                return 0, f"POST {url}: {exc}".encode()
            if response.status != 401 or credentials is None or attempt:
                return response.status, response.body
            await credentials.expired()
        raise AssertionError("unreachable")

    return post

