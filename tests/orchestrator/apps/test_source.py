"""Fetching an app's source (``orchestrator/apps/source.py``): folders are copied without
their build leftovers; tarballs are extracted only when no member could land outside."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import pytest

from ngsi.destinations import Policy
from orchestrator.apps.source import SourceError, extract_tarball, fetch


def tarball(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in members:
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(("name", "kind", "link", "why"), [
    ("/etc/evil", tarfile.REGTYPE, "", "absolute"),
    ("../evil", tarfile.REGTYPE, "", "'..'"),
    ("app/../../evil", tarfile.REGTYPE, "", "'..'"),
    ("link", tarfile.SYMTYPE, "/etc/passwd", "links"),
    ("hard", tarfile.LNKTYPE, "../outside", "links"),
    ("dev", tarfile.CHRTYPE, "", "only files"),
])
def test_escaping_members_are_refused(tmp_path: Path, name: str, kind: bytes, link: str, why: str) -> None:
    data = tarball([(member("waziup-app.yaml"), b"name: ab\n"), (member(name, kind, link), b"x")])
    with pytest.raises(SourceError, match=why):
        extract_tarball(data, tmp_path / "dest")
    assert not (tmp_path / "evil").exists()


def test_tarball_with_one_top_folder_is_stripped(tmp_path: Path) -> None:
    data = tarball([(member("app", tarfile.DIRTYPE), b""), (member("app/waziup-app.yaml"), b"name: ab\n"),
                    (member("app/lib/x.py"), b"print(1)\n")])
    extract_tarball(data, tmp_path / "dest")
    assert (tmp_path / "dest" / "waziup-app.yaml").read_text() == "name: ab\n"
    assert (tmp_path / "dest" / "lib" / "x.py").exists()


def test_not_a_tarball(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a tarball"):
        extract_tarball(b"hello", tmp_path / "dest")


def test_folder_copy_leaves_build_leftovers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / ".venv" / "bin").mkdir(parents=True)
    (src / "node_modules").mkdir()
    (src / "pkg").mkdir()
    (src / "waziup-app.yaml").write_text("name: ab\n")
    (src / "pkg" / "m.py").write_text("x = 1\n")
    asyncio.run(fetch(str(src), tmp_path / "dest", Policy()))
    assert (tmp_path / "dest" / "pkg" / "m.py").read_text() == "x = 1\n"
    assert not (tmp_path / "dest" / ".venv").exists() and not (tmp_path / "dest" / "node_modules").exists()


def test_missing_path_and_refused_url(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such folder"):
        asyncio.run(fetch(str(tmp_path / "nothing"), tmp_path / "dest", Policy()))
    with pytest.raises(SourceError, match="169.254.169.254"):  # the cloud metadata endpoint
        asyncio.run(fetch("http://169.254.169.254/app.tar.gz", tmp_path / "dest", Policy()))
    with pytest.raises(SourceError, match="127.0.0.1"):  # loopback, unless allowed
        asyncio.run(fetch("http://127.0.0.1:1/repo.git", tmp_path / "dest", Policy()))


def test_tarball_url_from_an_allowed_loopback_server(tmp_path: Path) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tests.conftest import free_port

    served = tmp_path / "served"
    served.mkdir()
    (served / "app.tar.gz").write_bytes(tarball([(member("waziup-app.yaml"), b"name: ab\n")]))
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/app.tar.gz"
    try:
        with pytest.raises(SourceError, match="127.0.0.1"):
            asyncio.run(fetch(url, tmp_path / "refused", Policy()))
        asyncio.run(fetch(url, tmp_path / "dest", Policy(["127.0.0.1"])))
        assert (tmp_path / "dest" / "waziup-app.yaml").read_text() == "name: ab\n"
        with pytest.raises(SourceError, match="HTTP 404"):
            asyncio.run(fetch(url.replace("app.tar", "none.tar"), tmp_path / "d2", Policy(["127.0.0.1"])))
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", [
    "ssh://127.0.0.1/repo.git", "git://127.0.0.1/repo.git", "git@127.0.0.1:repo.git", "file:///etc",
    "ext::sh -c id",
])
def test_git_speaks_only_http_the_policy_can_judge(tmp_path: Path, url: str) -> None:
    """Other transports' hosts and paths escape the destination policy (and ext:: runs a
    command): refused before git runs, not read as a path of this host either."""
    with pytest.raises(SourceError, match="only http"):
        asyncio.run(fetch(url, tmp_path / "app", Policy()))


def test_git_does_not_follow_a_redirect_to_an_address_the_policy_refuses(tmp_path: Path) -> None:
    """A git URL on an allowed host that redirects to another (here a second loopback server
    the policy does not allow): git is told never to follow, so the second is never asked."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ngsi.destinations import parse_rules

    asked: list[str] = []

    class Inside(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    inside = ThreadingHTTPServer(("127.0.0.1", 0), Inside)

    class Redirect(Inside):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{inside.server_port}{self.path}")
            self.end_headers()

    outside = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (inside, outside):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        allowed = Policy(parse_rules(f"127.0.0.1:{outside.server_port}"))
        with pytest.raises(SourceError, match="git clone .* failed"):
            asyncio.run(fetch(f"http://127.0.0.1:{outside.server_port}/repo.git", tmp_path / "app", allowed))
        assert asked == []
    finally:
        for server in (inside, outside):
            server.shutdown()
