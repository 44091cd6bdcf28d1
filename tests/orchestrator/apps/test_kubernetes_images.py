"""DockerBuilder with a stand-in ``docker`` (a script recording its arguments): the build of
the generated Dockerfile on the untouched source, the push, the progress, a failure's tail."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from orchestrator.apps.kubernetes.dockerfile import dockerfile
from orchestrator.apps.kubernetes.images import BuildError, DockerBuilder, source_digest
from orchestrator.apps.manifest import parse_manifest

MANIFEST = parse_manifest({"name": "average-app", "runtime": "python", "entry": "app.py", "tenant": "farm7"})


def fake_docker(tmp_path: Path, status: int = 0) -> tuple[Path, Path]:
    """A ``docker`` that appends its arguments (and the Dockerfile it is given) to a log."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "docker"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        "args = sys.argv[1:]\n"
        "dockerfile = open(args[args.index('-f') + 1]).read() if '-f' in args else None\n"
        f"open({str(log)!r}, 'a').write(json.dumps({{'args': args, 'dockerfile': dockerfile}}) + '\\n')\n"
        "print('step 1/2'); print('step 2/2')\n"
        f"sys.exit({status})\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def test_build_then_push_the_digest_tagged_image(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "app.py").write_text("print('hi')\n")
    docker, log = fake_docker(tmp_path)
    progress: list[str] = []
    image = DockerBuilder("registry.test/apps", docker=str(docker)).build(MANIFEST, source, progress.append)
    assert image == f"registry.test/apps/farm7-average-app:{source_digest(source)}"
    build, push = [json.loads(line) for line in log.read_text().splitlines()]
    assert build["args"][:3] == ["build", "-t", image] and build["args"][-1] == str(source)
    assert build["dockerfile"] == dockerfile(MANIFEST)
    assert push["args"] == ["push", image]
    assert sorted(p.name for p in source.iterdir()) == ["app.py"]  # no Dockerfile left in the source
    assert progress == [f"building {image}", "step 1/2", "step 2/2", f"pushing {image}", "step 1/2", "step 2/2"]


def test_a_failed_build_says_why(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    docker, log = fake_docker(tmp_path, status=1)
    with pytest.raises(BuildError) as caught:
        DockerBuilder("registry.test/apps", docker=str(docker)).build(MANIFEST, source, lambda line: None)
    assert "status 1" in str(caught.value) and str(caught.value).endswith("step 2/2")
    assert len(log.read_text().splitlines()) == 1  # no push
