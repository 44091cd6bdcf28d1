#!/usr/bin/env bash
# Install the Debian packages the tests need, only those that are missing (we run as root).
set -eu
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v setsid >/dev/null 2>&1 || need+=(util-linux)
# the dashboard's browser tests (tests/analytics/dashboard): Debian's Chromium, driven headless
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ -x scripts/install-postgres.sh ]; then
  scripts/install-postgres.sh
fi
if [ -x scripts/install-mosquitto.sh ]; then
  scripts/install-mosquitto.sh
fi
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
