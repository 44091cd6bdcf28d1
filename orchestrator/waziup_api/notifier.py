"""Notifications and social messages: the contract's §5, on the API's store.

Notifications are kept in memory (loaded from the store at start, written through on every
change): a stored value looks at all of them, and the contract wants the firing done before
the value's answer (§5 rule 1), so the look must cost no I/O. They fire here rather than in
the rules service because of that rule: the rules service is fed by broker subscriptions,
asynchronously, and could not make a value's answer wait for its effects.

Social messages: channel ``none`` only logs (and succeeds); ``twitter``, ``sms`` and
``voice`` go through a :class:`Sender` given at start-up, and none is configured by
default: sending on them then fails with "not configured" (``POST /socials``: 400), while
notifications still count their firings (§5 rule 4).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from . import notifications as rules
from .backend import Backend
from .errors import ApiError, bad_request, not_found
from .store import Store

log = logging.getLogger("waziup.api.notifications")
CHANNELS = ("twitter", "sms", "voice", "none")


class Sender(Protocol):
    async def send(self, user: Mapping[str, Any], message: str) -> None: ...  # raises on failure


class NotConfigured:
    """A channel nobody configured: every send fails, saying so."""

    def __init__(self, channel: str) -> None:
        self.channel = channel

    async def send(self, user: Mapping[str, Any], message: str) -> None:
        raise ApiError(400, f"the {self.channel} channel is not configured on this platform")


class Notifier:
    def __init__(self, store: Store, backend: Backend, *, users: Callable[[str], Any],
                 senders: Mapping[str, Sender] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.backend = backend
        self.users = users  # async username -> User dict | None
        self.senders = dict(senders or {})
        self.clock = clock
        self.notifs: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        for doc in await self.store.list("notifications"):
            self.notifs[doc.pop("_id")] = doc

    async def _save(self, notif_id: str, notif: dict[str, Any]) -> None:
        self.notifs[notif_id] = notif
        await self.store.put("notifications", notif_id, {"_id": notif_id, **notif})

    # -- routes ----------------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        return [rules.render(n, i) for i, n in self.notifs.items()]

    def get(self, notif_id: str) -> dict[str, Any]:
        if not rules.well_formed_id(notif_id):
            raise bad_request(f"{notif_id!r} is not a notification id (24 hexadecimal digits)")
        notif = self.notifs.get(notif_id)
        if notif is None:
            raise not_found(f"notification {notif_id} not found")
        return rules.render(notif, notif_id)

    async def create(self, body: Any) -> str:
        notif = _checked(rules.validate, body)
        notif_id = rules.new_id()
        await self._save(notif_id, notif)
        await self._fire_at_creation(notif_id)
        return notif_id

    async def delete(self, notif_id: str) -> None:
        if self.notifs.pop(notif_id, None) is None:
            raise not_found(f"notification {notif_id} not found")
        await self.store.delete("notifications", notif_id)

    async def patch(self, notif_id: str, body: Any) -> None:
        self.get(notif_id)
        await self._save(notif_id, _checked(rules.patch, self.notifs[notif_id], body))

    async def set_status(self, notif_id: str, status: Any) -> None:
        self.get(notif_id)
        if status not in ("active", "inactive"):
            raise bad_request("status must be active or inactive")
        await self._save(notif_id, {**self.notifs[notif_id], "status": status})

    # -- firing ----------------------------------------------------------------------------

    async def _fire_at_creation(self, notif_id: str) -> None:
        """§5 rule 2: a new notification whose condition already holds fires once."""
        notif = self.notifs[notif_id]
        values = {}
        for device_id in notif["condition"]["devices"]:
            current = await self.backend.current_values(device_id)
            if current is not None:
                values[device_id] = current
        device = rules.creation_match(notif, values, self.clock())
        if device is not None:
            await self._fire(notif_id, values[device], on_value=False)

    def watching(self, device_id: str, sensor_id: str) -> bool:
        """Whether a notification watches this sensor: only then does a stored value need the
        device's other values (a read of the device per value otherwise spared)."""
        return any(rules.watches(n, device_id, sensor_id) for n in self.notifs.values())

    async def on_value(self, device_id: str, sensor_id: str, values: dict[str, Any]) -> None:
        """A value was stored: fire every notification it triggers (§5), before the answer."""
        now = self.clock()
        for notif_id in list(self.notifs):
            notif = self.notifs.get(notif_id)  # as it is now: an earlier firing may have changed it
            if notif is not None and rules.triggered(notif, device_id, sensor_id, values, now):
                # Claim the throttling window before the action's awaits (§5 rule 3): values
                # arriving meanwhile in other requests must find it taken, not fire too.
                self.notifs[notif_id] = {**notif, rules.LAST_VALUE_FIRE: now}
                await self._fire(notif_id, values, on_value=True)

    async def _fire(self, notif_id: str, values: Mapping[str, Any], *, on_value: bool) -> None:
        notif = self.notifs[notif_id]
        action = notif["action"]
        ok, reason = True, ""
        try:
            if action["type"] == "ActuationAction":
                act = action["value"]
                await self.backend.actuate(None, act["device_id"], act["actuator_id"],
                                           rules.substitute(act["actuator_value"], values))
            else:
                social = action["value"]
                await self.batch(social["usernames"], social["channels"], social["message"])
        except ApiError as exc:
            ok, reason = False, exc.text
        log.info("notification fired id=%s on_value=%s ok=%s%s", notif_id, on_value, ok,
                 f" reason={reason}" if reason else "")
        if notif_id in self.notifs:  # not deleted meanwhile
            await self._save(notif_id, rules.fired(self.notifs[notif_id], self.clock(), on_value=on_value, ok=ok,
                                                   code=204, reason=reason))

    # -- socials ---------------------------------------------------------------------------

    async def send(self, body: Any) -> str:
        """``POST /socials``: 400 for an unknown user, or a channel that cannot send."""
        if not isinstance(body, Mapping):
            raise bad_request("a social message must be a JSON object")
        username, channel, message = body.get("username"), body.get("channel"), body.get("message")
        if not isinstance(username, str) or not isinstance(message, str) or channel not in CHANNELS:
            raise bad_request('a social message needs "username", "channel" (twitter, sms, voice or none) and '
                              '"message"')
        message_id, error = await self._deliver(username, channel, message)
        if error is not None:
            raise error
        return message_id

    async def batch(self, usernames: Any, channels: Any, message: Any) -> None:
        """Each user on each channel; failures are logged (and recorded), not raised."""
        for username in usernames:
            for channel in channels:
                _, error = await self._deliver(username, channel, message)
                if error is not None:
                    log.warning("social message not sent user=%s channel=%s reason=%s", username, channel,
                                error.text)

    async def _deliver(self, username: str, channel: str, message: str) -> tuple[str, ApiError | None]:
        user = await self.users(username)
        if user is None:
            return "", bad_request(f"no user {username}")
        error: ApiError | None = None
        if channel == "none":
            log.info("social message user=%s channel=none message=%s", username, message[:500])
        else:
            try:
                await self.senders.get(channel, NotConfigured(channel)).send(user, message)
            except ApiError as exc:
                error = exc
            except Exception as exc:  # a sender's own failure: recorded, never a 500
                error = ApiError(400, f"the {channel} channel failed: {exc}")
        message_id = rules.new_id()
        await self.store.insert("socials", message_id, {
            "id": message_id, "username": username, "channel": channel, "message": message,
            "timestamp": rules.iso(self.clock()), "success": error is None,
        })
        return message_id, error


def _checked(check: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    try:
        return check(*args)
    except rules.NotifError as exc:
        raise bad_request(str(exc)) from None
