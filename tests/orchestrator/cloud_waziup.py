"""What the low-cost LoRa gateway's cloud script (LowCostLoRaGw ``CloudWAZIUP.py``) does
with each received packet, written with ``requests`` as it is: get a token, create the
device if it is missing, create the sensor if it is missing, post the value. The test runs
it against the WAZIUP API exactly as a gateway would (no Accept header, bare token text,
``Authorization: Bearer``)."""

from __future__ import annotations

import requests


def post_value(api: str, username: str, password: str, device_id: str, sensor_id: str, value: object,
               timestamp: str | None = None, visibility: str = "public") -> None:
    token = requests.post(f"{api}/auth/token", json={"username": username, "password": password}, timeout=10)
    token.raise_for_status()
    headers = {"Authorization": "Bearer " + token.text}
    device = requests.get(f"{api}/devices/{device_id}", headers=headers, timeout=10)
    if device.status_code == 404:
        created = requests.post(f"{api}/devices", headers=headers, timeout=10, json={
            "id": device_id, "gateway_id": "GW-" + device_id, "name": "LoRa device " + device_id,
            "sensors": [], "visibility": visibility,
        })
        created.raise_for_status()
        device = requests.get(f"{api}/devices/{device_id}", headers=headers, timeout=10)
    device.raise_for_status()
    if sensor_id not in [s["id"] for s in device.json().get("sensors", [])]:
        requests.post(f"{api}/devices/{device_id}/sensors", headers=headers, timeout=10,
                      json={"id": sensor_id, "name": sensor_id}).raise_for_status()
    body: dict[str, object] = {"value": value}
    if timestamp:
        body["timestamp"] = timestamp
    requests.post(f"{api}/devices/{device_id}/sensors/{sensor_id}/value", headers=headers, json=body,
                  timeout=10).raise_for_status()
