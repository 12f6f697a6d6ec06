"""One machine from the wheel (docs/deploy.md, "One machine (the wheel)"): the wheel built
from the checkout, installed into a fresh venv outside it, serves from a directory outside
it with only SPE_HOME and SPE_CATALOG_DIR set, and runs a workflow to COMPLETE."""

from __future__ import annotations

import os
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import requests

from tests.helpers import free_port
from tests.package.wheel import ROOT, build_wheel, run_tsv_summary, wait_ready
from tests.tiers import starting

SHIPPED = ("spe/openapi/wes.yaml", "spe/openapi/spe.yaml", "spe/api/ui/index.html",
           "spe/adapters/db/migrations/env.py", "spe/adapters/db/migrations/script.py.mako")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv outside the checkout with the wheel and its snakemake extra, the
    dependencies from the package index pip is configured for."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    assert not where.is_relative_to(ROOT)
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(where)], check=True, timeout=120)
    subprocess.run([str(where / "bin/python"), "-m", "pip", "install", "--quiet",
                    f"{wheel}[snakemake]"], check=True, timeout=600)
    return where


def _env(venv: Path, home: Path, **extra: str) -> dict[str, str]:
    """Nothing of the checkout: no PYTHONPATH, no VIRTUAL_ENV, only the venv on PATH."""
    return {"PATH": f"{venv}/bin:/usr/bin:/bin", "HOME": str(home.parent),
            "LANG": "C.UTF-8", "SPE_HOME": str(home), **extra}


@pytest.fixture
def served(venv: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    starting("`spe serve` from the installed wheel")
    outside = tmp_path / "site"
    outside.mkdir()
    home, port = outside / "home", free_port()
    env = _env(venv, home, SPE_CATALOG_DIR=str(ROOT / "workflows"),
               SPE_RECONCILE_SECONDS="0.3")
    log = outside / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin/spe"), "serve", "--port", str(port)],
                                cwd=outside, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", lambda: proc.poll() is None, 60, log)
        yield f"http://127.0.0.1:{port}", home
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_the_wheel_carries_what_the_service_needs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(SHIPPED) <= names
    assert f"spe-{version('spe')}.dist-info/licenses/LICENSE" in names
    assert not any(n.startswith(("workflows/", "tests/", "openapi/")) for n in names)


def test_the_installed_service_without_a_catalog_says_what_to_set(venv: Path,
                                                                  tmp_path: Path) -> None:
    out = subprocess.run([str(venv / "bin/spe"), "catalog", "verify"], cwd=tmp_path,
                         check=False,
                         env=_env(venv, tmp_path / "home"), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "no workflow catalog: set SPE_CATALOG_DIR" in out.stderr


def test_spe_serve_from_the_wheel_runs_a_workflow_to_complete(venv: Path,
                                                              served: tuple[str, Path]) -> None:
    url, home = served
    installed = subprocess.run([str(venv / "bin/python"), "-c",
                                "import spe, sys; print(spe.__file__); print(spe.__version__)"],
                               cwd=home.parent, env=_env(venv, home), capture_output=True,
                               text=True, check=True, timeout=60).stdout.split()
    assert Path(installed[0]).is_relative_to(venv)  # the wheel's copy, not the checkout's
    assert subprocess.run([str(venv / "bin/spe"), "--version"], env=_env(venv, home),
                          capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip() == f"spe {installed[1]}"
    info = requests.get(f"{url}/ga4gh/wes/v1/service-info", timeout=30).json()
    assert info["version"] == installed[1] == version("spe")
    token = subprocess.run([str(venv / "bin/spe"), "dev", "token", "--user", "alice"],
                           env=_env(venv, home), capture_output=True, text=True, check=True,
                           timeout=60).stdout.strip()
    log = run_tsv_summary(url, token)
    assert log["state"] == "COMPLETE", log
    assert log["outputs"], log
