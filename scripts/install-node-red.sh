#!/bin/sh
# Node-RED for the apps of runtime node-red (orchestrator/apps): installed once, at set-up,
# from the committed lock file (scripts/node-red/package-lock.json), into .node-red/ beside
# the venv, so that deploying a Node-RED app never downloads anything. Needs Node.js and npm
# (Debian's nodejs and npm packages); without them the apps of runtime node-red fail to build
# with a message saying so, and every other runtime works.
set -e
here=$(cd "$(dirname "$0")/.." && pwd)
target="$here/.node-red"
if [ -x "$target/node_modules/.bin/node-red" ] && cmp -s "$here/scripts/node-red/package-lock.json" "$target/package-lock.json"; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -q nodejs npm >/dev/null
    else
        echo "install-node-red: npm is not installed: Node-RED apps cannot run" >&2
        exit 1
    fi
fi
mkdir -p "$target"
cp "$here/scripts/node-red/package.json" "$here/scripts/node-red/package-lock.json" "$target/"
cd "$target"
npm ci --no-audit --no-fund --loglevel=error
echo "install-node-red: $("$target/node_modules/.bin/node-red" --help 2>/dev/null | head -1) in $target"
