"""Building the project's wheel the way an operator does, from the files git knows (never
stale ``build/`` leftovers), reproducibly (``SOURCE_DATE_EPOCH``), so its digest names its
content and can key caches (the container image)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
WES = "/ga4gh/wes/v1"
EPOCH = "315532800"  # 1980-01-01, the oldest time a zip entry can carry


def source_files() -> list[str]:
    """Tracked and new (not ignored) files of the checkout, as an operator's clone has."""
    git = shutil.which("git") or "git"
    out = subprocess.run([git, "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True, check=True,
                         timeout=60).stdout
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def build_wheel(dest: Path) -> Path:
    """``pip wheel --no-deps`` of a clean copy of the checkout; the wheel's path."""
    src = dest / "src"
    for name in source_files():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    out = dest / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(out), str(src)], check=True, timeout=300,
                   env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH})
    (wheel,) = out.glob("spe-*.whl")
    return wheel


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_ready(url: str, alive: Callable[[], bool], timeout: float, log: Path) -> None:
    """Until ``url``/readyz answers 200; ``alive()`` false means the server exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"the server exited:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready in {timeout} s:\n{log.read_text(errors='replace')[-4000:]}")


def run_tsv_summary(url: str, token: str, timeout: float = 180) -> dict[str, object]:
    """Submit the demo workflow tsv-summary@1.0.0 and wait for its end; its run log."""
    auth = {"Authorization": f"Bearer {token}"}
    form = {"workflow_url": "tsv-summary@1.0.0", "workflow_type": "SMK",
            "workflow_type_version": "9",
            "workflow_params": json.dumps({"input": "cohort_a.tsv"})}
    resp = requests.post(f"{url}{WES}/runs", files={k: (None, v) for k, v in form.items()},
                         headers=auth, timeout=60)
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["run_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = requests.get(f"{url}{WES}/runs/{run_id}/status", headers=auth,
                             timeout=30).json()["state"]
        if state in {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"}:
            break
        time.sleep(0.5)
    log = requests.get(f"{url}{WES}/runs/{run_id}", headers=auth, timeout=30)
    assert log.status_code == 200, log.text
    return dict(log.json())
