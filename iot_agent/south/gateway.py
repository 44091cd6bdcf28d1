"""The WAZIUP low-cost LoRa gateway's cloud script: ``waziup gw-post`` (or
``scripts/waziup-cloud-script``, or this file alone copied to the gateway: it needs only
the Python standard library).

The gateway's ``post_processing_gw.py`` runs every enabled cloud of ``clouds.json`` as
``<script> "<ldata>" "<pdata>" "<rdata>" "<tdata>" "<gwid>"``, e.g.
``"\\!TC/21.5/HU/60" "1,16,3,0,10,8,-45" "500,5,12" "2016-10-04T02:03:28.783385" "00000027EBBEDA21"``.
This script posts the five fields to the agent's ``POST /iot/waziup?k=<apikey>``, which
decodes them (``codecs.waziup_gw``), names the device ``<org><servicetree>_<sensor><src>``
(``Sensor3`` without organisation; a LoRaWAN node the gateway relays, ``dst`` 256, by its
DevAddr in hex: ``Sensor0x26011DB8``, as ``CloudWAZIUP.py`` does) and sends its measures
like any other device's. A project or service tree prefix shorter than 3 characters in
``ldata`` is ignored, as there.

clouds.json entry::

    {"name": "WAZIUP IoT agent", "script": "waziup gw-post", "type": "iotcloud", "enabled": true}

Settings (environment): ``WAZIUP_IOTA_URL`` (default ``http://localhost:7896``),
``WAZIUP_GW_APIKEY`` (the group's apikey; default: the payload's project prefix),
``WAZIUP_GW_ORG`` and ``WAZIUP_GW_SENSOR`` (device naming, default ``""`` and ``Sensor``).
Exit status 0 on success, 1 when the agent refused the data, 2 on bad arguments.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

USAGE = 'usage: waziup gw-post "<ldata>" "<pdata>" "<rdata>" "<tdata>" "<gwid>"'


def post(ldata: str, pdata: str, rdata: str, tdata: str, gwid: str, *, environ: dict[str, str] | None = None) -> tuple[int, str]:
    """POST the five fields; returns (HTTP status, body)."""
    env = os.environ if environ is None else environ
    base = env.get("WAZIUP_IOTA_URL", "http://localhost:7896").rstrip("/")
    query = {k: v for k, v in (("k", env.get("WAZIUP_GW_APIKEY", "")), ("org", env.get("WAZIUP_GW_ORG", "")), ("sensor", env.get("WAZIUP_GW_SENSOR", ""))) if v}
    url = f"{base}/iot/waziup" + ("?" + urllib.parse.urlencode(query) if query else "")
    body = json.dumps({"ldata": ldata, "pdata": pdata, "rdata": rdata, "tdata": tdata, "gwid": gwid}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        status, text = post(*args)
    except (urllib.error.URLError, OSError) as exc:
        print(f"waziup gw-post: {exc}", file=sys.stderr)
        return 1
    if status >= 300:
        print(f"waziup gw-post: {status} {text}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
