"""The container image (docs/deploy.md, "The container image"): scripts/build-image.sh
builds it from the Containerfile, a Debian root and the project's wheel, without a
registry; ch-run runs it read-only, as its non-root user, with state only in the mounted
SPE_HOME, and it serves /readyz and a workflow run to COMPLETE.

The build takes minutes (1 to 2.5 on this machine with the Debian root kept, about 3
from an empty cache), so it is cached under SPE_IMAGE_CACHE keyed on the wheel's digest,
the Containerfile and the script: after an unchanged build these tests take about 30 s.
``podman run`` does not work in this sandbox (cgroups), hence ch-run."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port
from tests.package.wheel import ROOT, build_wheel, digest, run_tsv_summary, wait_ready
from tests.redis_server import RedisServer, databases
from tests.tiers import starting

CACHE = Path(os.environ.get("SPE_IMAGE_CACHE", "/var/tmp/spe-image"))
TAG = "localhost/spe-test:latest"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
UID = "10001"
_env_files = itertools.count()


@dataclass
class Image:
    rootfs: Path
    config: dict[str, Any]  # the Docker image configuration (Env, User, Cmd, Healthcheck)
    archive: Path


def _tools() -> None:
    for tool in ("ch-run", "buildah", "mmdebstrap"):
        if shutil.which(tool, path=SYSTEM_PATH) is None:
            pytest.fail(f"{tool} is missing: run scripts/install-test-deps.sh")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The image of this checkout, built by scripts/build-image.sh unless the cache holds
    a build of the same wheel, Containerfile and script."""
    _tools()
    wheel = build_wheel(tmp_path_factory.mktemp("image-wheel"))
    key = hashlib.sha256("\n".join([
        digest(wheel), digest(ROOT / "Containerfile"),
        digest(ROOT / "scripts/build-image.sh")]).encode()).hexdigest()[:16]
    out = CACHE / "test"
    rootfs, marker = out / "rootfs", out / "built-from"
    archive = out / f"spe-{wheel.name.split('-')[1]}.oci.tar"
    fresh = (marker.is_file() and marker.read_text() == key and rootfs.resolve().is_dir()
             and (rootfs / "opt/spe/bin/spe").exists() and archive.is_file())
    if not fresh:
        marker.unlink(missing_ok=True)
        subprocess.run([str(ROOT / "scripts/build-image.sh"), "--wheel", str(wheel),
                        "--out", str(out), "--rootfs", str(rootfs), "--tag", TAG],
                       check=True, timeout=1200,
                       env={**os.environ, "SPE_IMAGE_CACHE": str(CACHE)})
        marker.write_text(key)
    inspect = json.loads((out / "rootfs.image.json").read_text())
    return Image(rootfs, inspect["Docker"]["config"], archive)


def _ch_run(image: Image, home: Path, env: dict[str, str], *argv: str,
            binds: tuple[str, ...] = ()) -> list[str]:
    """ch-run as the image's user, its environment only (plus ``env``), the root
    read-only (ch-run's default), a private /tmp, SPE_HOME the one writable mount."""
    env_file = home.parent / f"image-{next(_env_files)}.env"  # one per container
    env_file.write_text("\n".join([*image.config["Env"],
                                   *(f"{k}={v}" for k, v in env.items())]) + "\n")
    args = ["ch-run", "--unset-env=*", f"--set-env={env_file}", "--private-tmp",
            "--uid", UID, "--gid", UID, "--cd", "/var/lib/spe",
            "-b", f"{home}:/var/lib/spe"]
    for bind in binds:
        args += ["-b", bind]
    return [*args, str(image.rootfs), "--", *argv]


def _host_env() -> dict[str, str]:
    return {"PATH": SYSTEM_PATH, "USER": "root", "HOME": "/root", "LANG": "C.UTF-8"}


def test_the_image_is_configured_for_a_read_only_non_root_service(image: Image) -> None:
    config = image.config
    assert config["User"] == f"{UID}:{UID}"
    assert config["Cmd"] == ["spe", "serve"]
    assert "/var/lib/spe" in config["Volumes"]
    assert "SPE_HOME=/var/lib/spe" in config["Env"]
    assert any("/readyz" in part for part in config["Healthcheck"]["Test"])
    with tarfile.open(image.archive) as archive:  # an OCI image layout
        names = set(archive.getnames())
    assert {"oci-layout", "index.json"} <= names


def test_the_image_has_debians_python_the_wheel_in_a_venv_and_no_compilers(
        image: Image, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    script = ("for c in gcc cc c++ g++ clang make ld; do command -v $c; done; "
              "readlink -f /opt/spe/bin/python; /opt/spe/bin/python -c "
              "'import spe, sys; print(spe.__file__, sys.version_info[:2])'; "
              "/opt/spe/bin/python -m pip --version 2>&1 | head -c 40; echo; "
              "touch /usr/x 2>&1 || echo read-only; id -u")
    out = subprocess.run(_ch_run(image, home, {}, "/bin/sh", "-c", script),
                         env=_host_env(), capture_output=True, text=True, check=True,
                         timeout=120).stdout.splitlines()
    assert out[0] == "/usr/bin/python3.11", out  # no compiler found above it
    assert out[1].startswith("/opt/spe/lib/python3.11/site-packages/spe/"), out
    assert out[1].endswith("(3, 11)"), out
    assert "No module named pip" in out[2], out  # nothing installs at run time
    assert out[-2:] == ["read-only", UID], out


def _start(image: Image, home: Path, env: dict[str, str], log: Path,
           *argv: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            _ch_run(image, home, env, *argv, binds=(f"{ROOT / 'workflows'}:/etc/spe/catalog",)),
            env=_host_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _api_env(port: int, **extra: str) -> dict[str, str]:
    return {"SPE_HOST": "127.0.0.1", "SPE_PORT": str(port),  # the dev issuer: loopback only
            "SPE_CATALOG_DIR": "/etc/spe/catalog", "SPE_RECONCILE_SECONDS": "0.3", **extra}


def _token(image: Image, home: Path) -> str:
    return subprocess.run(_ch_run(image, home, {}, "spe", "dev", "token", "--user", "alice"),
                          env=_host_env(), capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


@pytest.fixture
def served(image: Image, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    starting("the container image under ch-run")
    home, port = tmp_path / "home", free_port()
    home.mkdir(mode=0o700)
    log = tmp_path / "serve.log"
    proc = _start(image, home, _api_env(port), log, "spe", "serve")
    try:
        wait_ready(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, 90, log)
        yield f"http://127.0.0.1:{port}", home
    finally:
        _stop(proc)


def test_the_image_serves_and_runs_a_workflow_to_complete(image: Image,
                                                          served: tuple[str, Path]) -> None:
    url, home = served
    port = url.rsplit(":", 1)[1]
    health = subprocess.run(_ch_run(image, home, {"SPE_PORT": port},
                                    *image.config["Healthcheck"]["Test"][1:]),
                            env=_host_env(), capture_output=True, text=True, timeout=60,
                            check=False)
    assert health.returncode == 0, health.stderr  # the HEALTHCHECK command itself
    log = run_tsv_summary(url, _token(image, home))
    assert log["state"] == "COMPLETE", log
    assert log["outputs"], log
    assert {"runs", "spe.db"} <= {p.name for p in home.iterdir()}  # state: the mount only


def test_the_images_api_and_worker_run_a_workflow_over_redis(
        image: Image, tmp_path: Path, redis_server: RedisServer) -> None:
    """The image's two commands as a production site runs them: `spe serve` enqueues on
    Redis (SPE_DISPATCHER=celery), `spe worker`, a second container of the same image on
    the same SPE_HOME, starts and finishes the run."""
    starting("the container image under ch-run")
    home, port = tmp_path / "home", free_port()
    home.mkdir(mode=0o700)
    env = _api_env(port, SPE_DISPATCHER="celery", SPE_REDIS_URL=redis_server.url(next(databases)))
    api = _start(image, home, env, tmp_path / "api.log", "spe", "serve")
    worker = None
    try:
        wait_ready(f"http://127.0.0.1:{port}", lambda: api.poll() is None, 90,
                   tmp_path / "api.log")
        worker = _start(image, home, env, tmp_path / "worker.log",
                        "spe", "worker", "--concurrency", "1")
        log = run_tsv_summary(f"http://127.0.0.1:{port}", _token(image, home))
        assert log["state"] == "COMPLETE", (log, (tmp_path / "worker.log").read_text()[-3000:])
        assert "Task spe.run.start[" in (tmp_path / "worker.log").read_text()  # by the worker
    finally:
        for proc in (worker, api):
            if proc is not None:
                _stop(proc)
