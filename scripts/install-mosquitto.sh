#!/usr/bin/env bash
# Install Debian's Mosquitto MQTT broker: `waziup run` starts it as its MQTT broker
# (orchestrator/mosquitto.py; without it, the embedded amqtt, open to anyone), and the
# tests start their own. Idempotent: does nothing when the mosquitto binary is there.
# Neither uses the package's own service.
set -euo pipefail

have_mosquitto() {
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]
}

if have_mosquitto; then
    echo "install-mosquitto: mosquitto already installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-mosquitto: run as root (or install sudo)" >&2; exit 1; }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends mosquitto
have_mosquitto || { echo "install-mosquitto: mosquitto still missing after install" >&2; exit 1; }
# The package starts its own service on :1883 where systemd runs: the port `waziup run`'s
# Mosquitto wants. Only a service this script just installed is stopped and disabled.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    $sudo systemctl disable --now mosquitto.service >/dev/null 2>&1 \
        && echo "install-mosquitto: the package's own mosquitto service stopped and disabled (waziup run starts its own)"
fi
echo "install-mosquitto: mosquitto ready"
