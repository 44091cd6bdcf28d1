"""An app's image: the digest of its source, and a ``docker build`` + ``docker push`` of it.

The cluster cannot see the orchestrator's disk, so an app built from source becomes an image
in a registry the cluster pulls from (``<registry>/<tenant>-<name>:<digest>``). The digest
covers every file's path and bytes, so a redeploy of the same source builds nothing new.
``Builder`` is what the back end needs; ``DockerBuilder`` is one (Kaniko or BuildKit would
be another, with the same Dockerfile from ``dockerfile.py``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .dockerfile import dockerfile, image_name

if TYPE_CHECKING:
    from orchestrator.apps.manifest import Manifest

SKIPPED = frozenset({".git", "__pycache__", "node_modules", ".venv"})


def source_digest(source_dir: Path | str) -> str:
    """SHA-256 (hex) of the source tree: sorted relative paths, each with its bytes and
    whether it is executable; version control and build leftovers are left out."""
    root = Path(source_dir)
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED)
        for filename in sorted(filenames):
            path = Path(dirpath, filename)
            if path.is_symlink() or not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            digest.update(relative.encode() + b"\0" + (b"x" if os.access(path, os.X_OK) else b"-"))
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class Builder(Protocol):
    def build(self, manifest: Manifest, source_dir: Path, progress: Callable[[str], None]) -> str:
        """Build and publish the app's image; its name, as the cluster pulls it."""


class BuildError(RuntimeError):
    """The image could not be built or pushed; the message ends with the tool's last lines."""


class DockerBuilder:
    """``docker build`` of the generated Dockerfile on the app's source (left untouched: the
    Dockerfile is a temporary file), then ``docker push``, both streamed to ``progress``."""

    def __init__(self, registry: str, docker: str = "docker", push: bool = True) -> None:
        self.registry = registry
        self.docker = docker
        self.push = push

    def _run(self, args: list[str], progress: Callable[[str], None]) -> None:
        tail: list[str] = []
        with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                progress(line.rstrip("\n"))
                tail = [*tail[-19:], line.rstrip("\n")]
        if proc.returncode != 0:
            raise BuildError(f"{' '.join(args[:2])} exited with status {proc.returncode}:\n" + "\n".join(tail))

    def build(self, manifest: Manifest, source_dir: Path, progress: Callable[[str], None]) -> str:
        image = image_name(self.registry, manifest, source_digest(source_dir))
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp, "Dockerfile")
            file.write_text(dockerfile(manifest))
            progress(f"building {image}")
            self._run([self.docker, "build", "-t", image, "-f", str(file), str(source_dir)], progress)
        if self.push:
            progress(f"pushing {image}")
            self._run([self.docker, "push", image], progress)
        return image
