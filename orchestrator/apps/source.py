"""Where an app's code comes from: a folder (copied), a git URL (``git clone --depth 1``) or
a tarball (a path, a URL, or the bytes of an upload), always into a fresh folder the
platform owns, so that a build never writes into the user's tree.

A tarball is untrusted: it is extracted member by member, and any member with an absolute
path, a ``..`` step, a link, or a device is refused with the member named, rather than
silently skipped, so the user learns why the app would not be what they sent. URLs go
through the destination policy (``ngsi/destinations.py``): a source URL may not reach the
platform's own loopback services or a cloud metadata endpoint unless allowed.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import Final

from ngsi.destinations import Policy

from .manifest import MANIFEST_FILE

MAX_TARBALL: Final = 64 * 1024 * 1024
MAX_EXTRACTED: Final = 512 * 1024 * 1024
_IGNORED: Final = (".git", ".venv", "node_modules", "__pycache__")


class SourceError(Exception):
    """The source could not be fetched or is not acceptable (the message says why)."""


def is_url(source: str) -> bool:
    """A URL (fetched by the orchestrator) rather than a path on its host. ``git://``,
    ``ssh://`` and ``git@`` are URLs too, so that they are refused as such, not read as paths."""
    return source.startswith(("http://", "https://", "git://", "ssh://", "git@", "file:", "ext::"))


def is_tarball_name(name: str) -> bool:
    return name.endswith((".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz"))


def copy_folder(src: Path, dest: Path) -> None:
    """A copy of ``src`` (its build leftovers, ``.git``, ``.venv`` and ``node_modules``, left out)."""
    if not src.is_dir():
        raise SourceError(f"{src} is not a folder")
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(*_IGNORED), dirs_exist_ok=True)


def _safe_member(member: tarfile.TarInfo) -> str:
    """The member's relative path; SourceError if it could land outside the folder."""
    name = member.name
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise SourceError(f"tarball member {name!r}: absolute path refused")
    if ".." in path.parts:
        raise SourceError(f"tarball member {name!r}: '..' refused")
    if member.issym() or member.islnk():
        raise SourceError(f"tarball member {name!r}: links are refused")
    if not (member.isfile() or member.isdir()):
        raise SourceError(f"tarball member {name!r}: only files and folders are accepted")
    return str(path)


def extract_tarball(data: bytes, dest: Path) -> None:
    """Extract a (possibly compressed) tarball into ``dest``; one top folder holding the
    manifest is stripped (``app/waziup-app.yaml`` as ``git archive --prefix`` makes)."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SourceError(f"not a tarball: {exc}") from None
    total = 0
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise SourceError(f"damaged tarball: {exc}") from None
        names = [(member, _safe_member(member)) for member in members]
        tops = {PurePosixPath(name).parts[0] for _, name in names if name not in (".", "")}
        strip = ""
        if len(tops) == 1 and not any(name == MANIFEST_FILE for _, name in names):
            strip = tops.pop()
        dest.mkdir(parents=True, exist_ok=True)
        for member, name in names:
            rel = PurePosixPath(name)
            if strip:
                if rel.parts[:1] != (strip,) or len(rel.parts) == 1:
                    continue
                rel = PurePosixPath(*rel.parts[1:])
            target = dest.joinpath(*rel.parts) if rel.parts else dest
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            total += member.size
            if total > MAX_EXTRACTED:
                raise SourceError(f"tarball expands beyond {MAX_EXTRACTED // 1024 // 1024} MiB")
            target.parent.mkdir(parents=True, exist_ok=True)
            stream = archive.extractfile(member)
            if stream is None:
                raise SourceError(f"tarball member {name!r} cannot be read")
            with stream, open(target, "wb") as out:
                shutil.copyfileobj(stream, out)
            os.chmod(target, 0o755 if member.mode & 0o111 else 0o644)


async def _download(url: str, policy: Policy) -> bytes:
    from ngsi.client import HTTPClient

    decision = await policy.check_resolved(url)
    if not decision:
        raise SourceError(f"{url}: {decision.reason}")
    client = HTTPClient()
    try:
        answer = await client.request("GET", url, [], b"", 120.0)
    except Exception as exc:  # noqa: BLE001  (any transport failure is the user's to see)
        raise SourceError(f"{url}: could not download: {exc}") from None
    finally:
        await client.aclose()
    if answer.status != 200:
        raise SourceError(f"{url}: answered HTTP {answer.status}")
    if len(answer.body) > MAX_TARBALL:
        raise SourceError(f"{url}: larger than {MAX_TARBALL // 1024 // 1024} MiB")
    return bytes(answer.body)


# git may only speak http(s) here (no file://, ext::, ssh:// or git://: their hosts and paths
# would escape the destination policy), never follow a redirect (a public URL answering 302
# to an internal address), and never ask for credentials.
_GIT_SAFE: Final = ("-c", "protocol.allow=never", "-c", "protocol.http.allow=always", "-c",
                    "protocol.https.allow=always", "-c", "http.followRedirects=false", "-c", "credential.helper=")


async def _git_clone(url: str, dest: Path, policy: Policy) -> None:
    if not url.startswith(("http://", "https://")):
        raise SourceError(f"{url}: only http(s) git URLs are fetched (the destination policy can judge no other)")
    decision = await policy.check_resolved(url)
    if not decision:
        raise SourceError(f"{url}: {decision.reason}")
    if shutil.which("git") is None:
        raise SourceError("git is not installed on this host: install it, or deploy a folder or a tarball")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    proc = await asyncio.create_subprocess_exec(
        "git", *_GIT_SAFE, "clone", "--depth", "1", "--no-recurse-submodules", "--", url, str(dest),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SourceError(f"git clone {url} failed: {out.decode(errors='replace')[-1000:].strip()}")
    shutil.rmtree(dest / ".git", ignore_errors=True)


def under(path: Path, folders: tuple[str, ...]) -> bool:
    """Is ``path`` (resolved: links followed) inside one of ``folders``?"""
    real = path.expanduser().resolve()
    return any(real.is_relative_to(Path(folder).expanduser().resolve()) for folder in folders)


async def fetch(source: str, dest: Path, policy: Policy) -> None:
    """Put the app's files named by ``source`` (a folder, a tarball path, a tarball URL or a
    git URL) into the empty folder ``dest``."""
    if is_url(source):
        plain = source.split("?", 1)[0].split("#", 1)[0]
        if is_tarball_name(plain) and source.startswith(("http://", "https://")):
            data = await _download(source, policy)
            await asyncio.to_thread(extract_tarball, data, dest)
        else:
            await _git_clone(source, dest, policy)
        return
    path = Path(source).expanduser()
    if path.is_dir():
        await asyncio.to_thread(copy_folder, path, dest)
    elif path.is_file() and is_tarball_name(path.name):
        await asyncio.to_thread(extract_tarball, path.read_bytes(), dest)
    elif path.exists():
        raise SourceError(f"{source}: neither a folder nor a tarball (.tar.gz, .tgz, .tar)")
    else:
        raise SourceError(f"{source}: no such folder or file (the path is read on the orchestrator's host)")
