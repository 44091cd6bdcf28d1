"""The API's rules on its MQTT broker (contract §6).

* Login: anonymous clients are the guest; a username and password must be a platform
  user's (checked at the identity manager), else the connection is refused.
* A publish on ``devices/{d}/sensors/{s}/value`` is stored as an HTTP push is (broker,
  history, notifications) before it is acknowledged, then relayed as sent; one on
  ``devices/{d}/actuators/{a}/value`` sets the actuator. A publish the client may not make
  (a guest on a private device), or that does not store (unknown sensor, bad payload), is
  acknowledged and dropped: refusing it would hang a QoS 1 publisher. Other topics are
  relayed as a plain broker would.
* A device's messages reach only subscribers who may view its data.
* A client whose id is a gateway's id makes that gateway ``connected`` while it is.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from . import bodies
from .caller import GUEST, Caller
from .errors import ApiError
from .permissions import may
from .service import WaziupApi
from .values import ValueError400, sensor_value

log = logging.getLogger("waziup.api.mqtt")


def device_topic(topic: str) -> tuple[str, str, str] | None:
    """(device, ``sensors``|``actuators``, id) of a value topic, else None."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[0] == "devices" and parts[2] in ("sensors", "actuators") and parts[4] == "value" \
            and parts[1] and parts[3]:
        return parts[1], parts[2], parts[3]
    return None


class ApiHooks:
    def __init__(self, api: WaziupApi) -> None:
        self.api = api
        self._tasks: set[asyncio.Task[None]] = set()

    async def authenticate(self, username: str | None, password: str | None) -> Caller | None:
        if username is None:
            return GUEST
        if self.api.accounts is None or password is None:
            return None
        return await self.api.accounts.check_password(username, password)

    async def on_publish(self, caller: Caller, topic: str, payload: bytes) -> bool:
        target = device_topic(topic)
        if target is None:
            return True
        device_id, kind, member_id = target
        backend = self.api.backend
        try:
            if kind == "sensors":
                value = sensor_value(payload, "application/json", backend.now_ms())
                await backend.push(caller, device_id, member_id, value, publish=False)
            else:
                await backend.actuate(caller, device_id, member_id, _json(payload), publish=False)
        except (ApiError, ValueError400) as exc:
            log.info("mqtt publish dropped topic=%s user=%s reason=%s", topic, caller.username,
                     exc.text if isinstance(exc, ApiError) else exc)
            return False
        return True

    async def may_receive(self, caller: Caller, topic: str) -> bool:
        target = device_topic(topic)
        if target is None:
            return True
        perm = await self.api.backend.permission_of(target[0])
        return perm is not None and may(caller, "devices-data:view", perm)

    def on_connect(self, client_id: str) -> None:
        self._spawn(self.api.presence(client_id, True))

    def on_disconnect(self, client_id: str) -> None:
        self._spawn(self.api.presence(client_id, False))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _json(payload: bytes) -> Any:
    """An actuator's value as HTTP reads it (``bodies.json_body``): strict JSON (no NaN, no
    1e999, which would be written back as invalid JSON) and never a RecursionError."""
    return bodies.json_body(payload)
