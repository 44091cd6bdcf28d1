"""How an app's source becomes an image (pure): a Dockerfile per runtime, and the image's name.

The Kubernetes back end does not build in the cluster: ``images.DockerBuilder`` runs
``docker build`` with this Dockerfile on the app's source (any builder that takes a
Dockerfile does: Kaniko, BuildKit, Podman), then pushes to the registry the cluster pulls
from. The image's tag is the digest of the source, so that the same source is one image and
a Deployment changes exactly when the source does.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Final

from .names import DEFAULT_TENANT, dns_label

if TYPE_CHECKING:
    from orchestrator.apps.manifest import Manifest

APP_UID: Final = 10001  # the user apps run as (never root); the Deployment says the same
PYTHON_IMAGE: Final = "python:3.12-slim"
NODE_IMAGE: Final = "node:22-slim"
SHELL_IMAGE: Final = "alpine:3.20"
NODE_RED_VERSION: Final = "4"

_COMMON_TAIL: Final = f"USER {APP_UID}:{APP_UID}\nENV HOME=/tmp\n"


def image_name(registry: str, manifest: Manifest, digest: str) -> str:
    """``<registry>/<tenant>-<name>:<digest>`` (``default`` for an app without tenant)."""
    repository = dns_label(f"{manifest.tenant or DEFAULT_TENANT}-{manifest.name}")
    return f"{registry.rstrip('/')}/{repository}:{digest}"


def command(manifest: Manifest) -> list[str]:
    """The container's command: what the local back end runs, as an exec array."""
    if manifest.runtime == "python":
        return ["python", *shlex.split(manifest.entry)]
    if manifest.runtime == "node":
        return ["node", *shlex.split(manifest.entry)]
    if manifest.runtime == "node-red":
        # flows from the image (read-only), Node-RED's own files in /data (an emptyDir)
        return ["node-red", "--userDir", "/data", f"/app/{manifest.entry}"]
    return ["/bin/sh", "-c", manifest.entry]


def dockerfile(manifest: Manifest) -> str:
    """The Dockerfile that builds the app's source (the build context) into its image."""
    cmd = json.dumps(command(manifest))
    if manifest.runtime == "python":
        return (
            f"FROM {PYTHON_IMAGE}\n"
            "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1\n"
            "WORKDIR /app\n"
            "COPY . /app\n"
            "RUN if [ -f requirements.txt ]; then pip install -r requirements.txt; fi\n"
            f"{_COMMON_TAIL}CMD {cmd}\n"
        )
    if manifest.runtime == "node":
        return (
            f"FROM {NODE_IMAGE}\n"
            "ENV NODE_ENV=production\n"
            "WORKDIR /app\n"
            "COPY . /app\n"
            "RUN if [ -f package-lock.json ]; then npm ci --omit=dev; "
            "elif [ -f package.json ]; then npm install --omit=dev; fi\n"
            f"{_COMMON_TAIL}CMD {cmd}\n"
        )
    if manifest.runtime == "node-red":
        return (
            f"FROM {NODE_IMAGE}\n"
            f"RUN npm install -g --omit=dev node-red@{NODE_RED_VERSION}\n"
            "WORKDIR /app\n"
            "COPY . /app\n"
            "RUN if [ -f package.json ]; then npm install --omit=dev; fi\n"
            f"{_COMMON_TAIL}CMD {cmd}\n"
        )
    return (
        f"FROM {SHELL_IMAGE}\n"
        "RUN apk add --no-cache curl jq ca-certificates\n"
        "WORKDIR /app\n"
        "COPY . /app\n"
        f"{_COMMON_TAIL}CMD {cmd}\n"
    )
