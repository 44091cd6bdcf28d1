#!/usr/bin/env bash
# What `make bench` needs beyond the venv: wrk (Debian package) as the load generator.
set -euo pipefail
if ! command -v wrk >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
