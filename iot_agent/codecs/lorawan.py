"""LoRaWAN network-server uplinks and downlinks (ChirpStack v4/v3, The Things Stack v3).

``parse_uplink(doc)`` reads an uplink event (already JSON-decoded, or bytes /
text) and returns an ``Uplink``: the DevEUI (upper-case hex, so it matches the
``dev_eui`` provisioned in ``internal_attributes.lorawan`` whatever case the
server uses), the network server's device id, the FPort, the raw FRMPayload,
the server-side decoded object (ChirpStack ``object``, v3 ``objectJSON``, TTS
``decoded_payload``) or ``None``, and radio metadata from the best gateway.

Formats are told apart by their keys: ``deviceInfo`` (ChirpStack v4),
``end_device_ids`` (TTS v3), ``devEUI`` (ChirpStack v3 ``json_v3``/``json``), ``payload_raw``
or ``dev_id`` (TTN v2, the FIWARE LoRaWAN agent manual's own test message).

``measures_from_uplink(uplink, data_model)`` applies the device's
``data_model`` (``cayennelpp``, ``application_server``, ``raw``).  CBOR is not
decoded here (no ``cbor2`` dependency): it raises ``ParseError``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from iot_agent.codecs import cayenne
from iot_agent.codecs.jsonmeasure import load_json
from iot_agent.errors import ParseError

__all__ = [
    "Uplink",
    "parse_uplink",
    "parse_chirpstack_v4",
    "parse_chirpstack_v3",
    "parse_tts_v3",
    "parse_ttn_v2",
    "measures_from_uplink",
    "chirpstack_downlink",
    "chirpstack_uplink_topic",
    "chirpstack_downlink_topic",
    "tts_downlink",
    "tts_uplink_topic",
    "tts_downlink_topic",
]

T = TypeVar("T")


@dataclass
class Uplink:
    network_server: str  # "chirpstack_v4" | "chirpstack_v3" | "tts_v3" | "ttn_v2"
    dev_eui: str | None
    device_id: str | None
    application_id: str | None
    fport: int | None
    payload: bytes
    decoded: dict[str, Any] | None
    metadata: dict[str, Any] = field(default_factory=dict)


def _obj(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ParseError(f"{what} must be a JSON object")
    return v


def _optional(d: dict[str, Any], key: str, kind: type[T], what: str) -> T | None:
    """``d[key]``, None when it is missing or null; ParseError when it is not a ``kind``
    (``what`` says which to the sender; JSON's true and false are no integers)."""
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ParseError(f"'{key}' must be {what}")
    return v


def _opt_str(d: dict[str, Any], key: str) -> str | None:
    return _optional(d, key, str, "a string")


def _opt_int(d: dict[str, Any], key: str) -> int | None:
    return _optional(d, key, int, "an integer")


def _eui(v: str | None) -> str | None:
    if v is None:
        return None
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise ParseError(f"bad EUI '{v}'") from None
    return raw.hex().upper()


def _b64(v: Any, key: str) -> bytes:
    if v is None:
        return b""
    if not isinstance(v, str):
        raise ParseError(f"'{key}' must be a base64 string")
    try:
        return cayenne.b64decode(v)
    except (binascii.Error, ValueError):
        raise ParseError(f"'{key}' is not valid base64") from None


def _decoded(v: Any, key: str) -> dict[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, str):  # ChirpStack v3 'json' marshaler: objectJSON is a string (Atos#139)
        if v == "":
            return None
        v = load_json(v)
    if not isinstance(v, dict):
        raise ParseError(f"'{key}' must be a JSON object")
    return v


def _num_or_none(v: Any) -> int | float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v


def _present(**values: Any) -> dict[str, Any]:
    """Metadata from what the uplink carries: a field it lacks is left out, not sent as null."""
    return {k: v for k, v in values.items() if v is not None}


def _lora(modulation: Any) -> dict[str, Any]:
    """The ``lora`` object of a modulation or data rate, {} when there is none."""
    lora = modulation.get("lora") if isinstance(modulation, dict) else None
    return lora if isinstance(lora, dict) else {}


def _best_gateway(items: Any, rssi_key: str, snr_key: str, gw: Any) -> dict[str, Any]:
    """Radio metadata of the gateway with the strongest RSSI (and how many heard it)."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise ParseError("gateway metadata must be an array")
    best: dict[str, Any] | None = None
    for it in items:
        if not isinstance(it, dict):
            raise ParseError("gateway metadata items must be objects")
        r = _num_or_none(it.get(rssi_key))
        if best is None or (r is not None and (best.get("rssi") is None or r > best["rssi"])):
            best = {"rssi": r, "snr": _num_or_none(it.get(snr_key)), "gateway_id": gw(it)}
    if best is None:
        return {"gateways": 0}
    out = {k: v for k, v in best.items() if v is not None}
    out["gateways"] = len(items)
    return out


def _load(doc: Any) -> dict[str, Any]:
    if isinstance(doc, (str, bytes, bytearray)):
        doc = load_json(doc)
    return _obj(doc, "uplink")


@dataclass(frozen=True)
class _Keys:
    """Where a network server's uplink keeps the fields every uplink has: ``dev_eui`` and
    ``device_id`` in the object naming the device, the others in the one carrying the
    frame (both are the uplink itself for ChirpStack v3). ``decoded`` lists the keys the
    server's decoded object may be under, in the order they are tried."""

    network_server: str
    dev_eui: str
    device_id: str
    fport: str
    payload: str
    decoded: tuple[str, ...]


_CHIRPSTACK_V4 = _Keys("chirpstack_v4", "devEui", "deviceName", "fPort", "data", ("object",))
_CHIRPSTACK_V3 = _Keys("chirpstack_v3", "devEUI", "deviceName", "fPort", "data", ("object", "objectJSON"))
_TTS_V3 = _Keys("tts_v3", "dev_eui", "device_id", "f_port", "frm_payload", ("decoded_payload",))
_TTN_V2 = _Keys("ttn_v2", "hardware_serial", "dev_id", "port", "payload_raw", ("payload_fields",))


def _first_decoded(frame: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any] | None:
    """The decoded object under the first of ``keys`` that has one (ChirpStack v3 may
    send it as an object or as a JSON string, under two names)."""
    for key in keys:
        decoded = _decoded(frame.get(key), key)
        if decoded is not None:
            return decoded
    return None


def _uplink(
    keys: _Keys, device: dict[str, Any], frame: dict[str, Any], application_id: str | None, metadata: dict[str, Any]
) -> Uplink:
    """The ``Uplink`` of any format, read where ``keys`` says; the format's parser finds
    the objects, the application id and the metadata, which differ more than by name."""
    return Uplink(
        network_server=keys.network_server,
        dev_eui=_eui(_opt_str(device, keys.dev_eui)),
        device_id=_opt_str(device, keys.device_id),
        application_id=application_id,
        fport=_opt_int(frame, keys.fport),
        payload=_b64(frame.get(keys.payload), keys.payload),
        decoded=_first_decoded(frame, keys.decoded),
        metadata=metadata,
    )


def parse_chirpstack_v4(doc: Any) -> Uplink:
    """ChirpStack v4 ``event/up`` (``deviceInfo.devEui``, ``fPort``, ``data``, ``object``, ``rxInfo``)."""
    d = _load(doc)
    info = _obj(d.get("deviceInfo"), "deviceInfo")
    meta = _present(
        time=_opt_str(d, "time"), dev_addr=_opt_str(d, "devAddr"), deduplication_id=_opt_str(d, "deduplicationId"),
        f_cnt=_opt_int(d, "fCnt"), dr=_opt_int(d, "dr"),
    )
    meta.update(_best_gateway(d.get("rxInfo"), "rssi", "snr", lambda it: it.get("gatewayId")))
    tx = d.get("txInfo")
    if isinstance(tx, dict):
        meta.update(_present(
            frequency=_num_or_none(tx.get("frequency")),
            spreading_factor=_num_or_none(_lora(tx.get("modulation")).get("spreadingFactor")),
        ))
    meta.update(_present(device_name=_opt_str(info, "deviceName")))
    return _uplink(_CHIRPSTACK_V4, info, d, _opt_str(info, "applicationId"), meta)


def parse_chirpstack_v3(doc: Any) -> Uplink:
    """ChirpStack v3 (``devEUI``, ``data``, ``object`` or string ``objectJSON``, ``rxInfo[].rssi/loRaSNR``)."""
    d = _load(doc)
    meta = _present(f_cnt=_opt_int(d, "fCnt"))
    meta.update(_best_gateway(d.get("rxInfo"), "rssi", "loRaSNR", lambda it: it.get("gatewayID") or it.get("mac")))
    app = d.get("applicationID")
    app_id = str(app) if isinstance(app, (str, int)) and not isinstance(app, bool) else None
    return _uplink(_CHIRPSTACK_V3, d, d, app_id, meta)


def parse_tts_v3(doc: Any) -> Uplink:
    """The Things Stack v3 uplink (``end_device_ids``, ``uplink_message.frm_payload`` / ``decoded_payload``)."""
    d = _load(doc)
    ids = _obj(d.get("end_device_ids"), "end_device_ids")
    up = _obj(d.get("uplink_message"), "uplink_message")
    app_ids = ids.get("application_ids")
    app = _opt_str(app_ids, "application_id") if isinstance(app_ids, dict) else None
    meta = _present(time=_opt_str(d, "received_at"), dev_addr=_opt_str(ids, "dev_addr"), f_cnt=_opt_int(up, "f_cnt"))
    meta.update(
        _best_gateway(
            up.get("rx_metadata"),
            "rssi",
            "snr",
            lambda it: (it.get("gateway_ids") or {}).get("gateway_id") if isinstance(it.get("gateway_ids"), dict) else None,
        )
    )
    settings = up.get("settings")
    if isinstance(settings, dict):
        if (f := settings.get("frequency")) is not None:
            try:
                meta["frequency"] = int(f)  # TTS writes uint64 as a JSON string
            except (TypeError, ValueError):
                pass
        meta.update(_present(spreading_factor=_num_or_none(_lora(settings.get("data_rate")).get("spreading_factor"))))
    if d.get("simulated") is True:
        meta["simulated"] = True
    return _uplink(_TTS_V3, ids, up, app, meta)


def parse_ttn_v2(doc: Any) -> Uplink:
    """The TTN v2 uplink the FIWARE LoRaWAN agent's manual publishes in its walkthrough
    (``app_id``, ``dev_id``, ``hardware_serial``, ``port``, ``payload_raw``, ``payload_fields``,
    ``metadata.gateways[].rssi/snr``)."""
    d = _load(doc)
    metadata = d.get("metadata")
    meta = _present(f_cnt=_opt_int(d, "counter"))
    if isinstance(metadata, dict):
        meta.update(_present(time=_opt_str(metadata, "time")))
        meta.update(_best_gateway(metadata.get("gateways"), "rssi", "snr", lambda it: it.get("gtw_id")))
    return _uplink(_TTN_V2, d, d, _opt_str(d, "app_id"), meta)


def parse_uplink(doc: Any) -> Uplink:
    """Any supported uplink, told apart by its keys."""
    d = _load(doc)
    if "deviceInfo" in d:
        return parse_chirpstack_v4(d)
    if "end_device_ids" in d:
        return parse_tts_v3(d)
    if "payload_raw" in d or "dev_id" in d:
        return parse_ttn_v2(d)
    if "devEUI" in d:
        return parse_chirpstack_v3(d)
    raise ParseError("unknown LoRaWAN uplink format")


def measures_from_uplink(uplink: Uplink, data_model: str | None = "cayennelpp") -> dict[str, Any]:
    """The measure dict of an uplink for the device's ``data_model``.

    * ``cayennelpp`` (the FIWARE agent's default): decode the raw payload;
    * ``application_server``: the network server's decoded object (``ParseError`` if none);
    * ``raw``: ``{"payload": <hex>, "fport": n}``;
    * ``None``: the decoded object when there is one, else CayenneLPP.
    """
    model = (data_model or "").lower()
    if model == "application_server" or (model == "" and uplink.decoded is not None):
        if uplink.decoded is None:
            raise ParseError("uplink carries no decoded payload")
        return dict(uplink.decoded)
    if model in ("cayennelpp", ""):
        return cayenne.decode(uplink.payload)
    if model == "raw":
        return {"payload": uplink.payload.hex(), "fport": uplink.fport}
    raise ParseError(f"unsupported data_model '{data_model}'")


# ---------------------------------------------------------------- downlinks and topics


def chirpstack_downlink(dev_eui: str, fport: int, payload: bytes, *, confirmed: bool = False) -> dict[str, Any]:
    """The JSON to publish on ``chirpstack_downlink_topic`` (ChirpStack v4 MQTT integration)."""
    return {
        "devEui": dev_eui.lower(),
        "confirmed": confirmed,
        "fPort": fport,
        "data": base64.b64encode(payload).decode("ascii"),
    }


def chirpstack_uplink_topic(application_id: str = "+", dev_eui: str = "+") -> str:
    return f"application/{application_id}/device/{dev_eui.lower()}/event/up"


def chirpstack_downlink_topic(application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui.lower()}/command/down"


def tts_downlink(fport: int, payload: bytes, *, confirmed: bool = False, priority: str = "NORMAL") -> dict[str, Any]:
    """The JSON to publish on ``tts_downlink_topic`` (``down/push`` or ``down/replace``)."""
    item: dict[str, Any] = {"f_port": fport, "frm_payload": base64.b64encode(payload).decode("ascii"), "priority": priority}
    if confirmed:
        item["confirmed"] = True
    return {"downlinks": [item]}


def tts_uplink_topic(application_id: str, device_id: str = "+", tenant: str | None = None) -> str:
    app = f"{application_id}@{tenant}" if tenant else application_id
    return f"v3/{app}/devices/{device_id}/up"


def tts_downlink_topic(application_id: str, device_id: str, *, replace: bool = False, tenant: str | None = None) -> str:
    app = f"{application_id}@{tenant}" if tenant else application_id
    return f"v3/{app}/devices/{device_id}/down/{'replace' if replace else 'push'}"


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact JSON bytes for an MQTT publish."""
    return json.dumps(doc, separators=(",", ":")).encode()
