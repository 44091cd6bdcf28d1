#!/usr/bin/env bash
# Install Debian's Mosquitto MQTT broker, for the tests of MQTT notifications
# (tests/broker/test_mqtt_notifications.py start their own `mosquitto -p PORT`).
# Idempotent: does nothing when the mosquitto binary is there. The tests do not use
# the package's own service.
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
echo "install-mosquitto: mosquitto ready"
