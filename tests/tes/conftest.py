"""A real `spe serve` running TES tasks under real Charliecloud, with the busybox image of
scripts/build-busybox-image.sh in its image catalog, and a policy of two projects with a
dataset each (project `proj-b` lets its researchers read logs directly)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, Api, Server

GROUPS = {
    "alice": ("spe:proj-a",),
    "rita": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "rex": ("spe:proj-a", "spe:proj-a:role=reviewer"),
    "bob": ("spe:proj-b",),
}
TES = "/ga4gh/tes/v1"


def busybox_root(dest: Path) -> Path:
    """The busybox image root, built by the project's script (Debian's busybox-static)."""
    missing = [tool for tool in ("ch-run",) if shutil.which(tool) is None]
    if missing or not Path("/usr/share/doc/busybox-static").exists():
        pytest.fail("Charliecloud and busybox-static are installed by "
                    "scripts/install-test-deps.sh; run it first")
    subprocess.run([str(ROOT / "scripts/build-busybox-image.sh"), str(dest)], check=True,
                   capture_output=True, timeout=60)
    return dest


def import_image(home: Path, root: Path, name: str, tag: str, *aliases: str,
                 store: Path | None = None, group: str = "") -> str:
    """`spe image import` as an operator runs it; returns the pinned digest."""
    argv = [sys.executable, "-m", "spe.cli.main", "image", "import", str(root),
            "--name", name, "--tag", tag, "--group", group,
            *(a for alias in aliases for a in ("--alias", alias))]
    if store is not None:
        argv += ["--store", str(store)]
    proc = subprocess.run(argv, env={"SPE_HOME": str(home), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=True)
    return proc.stdout.split()[-1]


def two_projects(path: Path, data: Path) -> Path:
    for name in ("cohort-a", "cohort-b"):
        (data / name / "tables").mkdir(parents=True, exist_ok=True)
        (data / name / "counts.tsv").write_text(f"sample\tcount\n{name}-1\t3\n{name}-2\t4\n")
        (data / name / "tables" / "one.tsv").write_text("a\n")
        (data / name / "tables" / "two.tsv").write_text("b\n")
    path.write_text(yaml.safe_dump({
        "trusted_authorities": ["dev.invalid"],
        "projects": [
            {"id": "proj-a", "title": "A",
             "entitlements": ["urn:geant:dev.invalid:group:spe:proj-a"]},
            {"id": "proj-b", "title": "B", "logs": "direct",
             "entitlements": ["urn:geant:dev.invalid:group:spe:proj-b"]}],
        "roles": [{"role": "reviewer", "project": "proj-a",
                   "entitlement": "urn:geant:dev.invalid:group:spe:proj-a:role=reviewer"}],
        "datasets": [
            {"id": "cohort-a", "location": str(data / "cohort-a"), "projects": ["proj-a"]},
            {"id": "cohort-b", "location": str(data / "cohort-b"), "projects": ["proj-b"]}],
    }))
    return path


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_root(tmp_path_factory.mktemp("image") / "busybox")


@pytest.fixture(scope="module")
def tes_server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path,
               busybox: Path) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("tes")
    home = base / "home"
    home.mkdir(mode=0o700)
    import_image(home, busybox, "busybox", "1.36", "alpine", "alpine:3.19")
    policy = two_projects(base / "policy.yaml", base / "data")
    server = Server(home=home, catalog=catalog_dir,
                    env_extra={"SPE_POLICY_FILE": str(policy)}).start()
    yield server
    server.stop()


def as_user(server: Server, name: str) -> Api:
    return Api(server.url, server.token(name, groups=GROUPS[name]))
