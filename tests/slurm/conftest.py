"""An API whose runs execute on the real single-node SLURM cluster, as the researcher.

The service's home lives under /var/tmp (not pytest's 0700 tmp tree) because the jobs run
as the POSIX accounts of scripts/cluster-side.sh, which must reach their run directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from spe.adapters.policy import DEMO_DATASET, DEV_NAMESPACE
from tests.helpers import Server
from tests.slurm_cluster import SlurmCluster, slurm_or_skip


def policy(path: Path) -> Path:
    """Project `demo` (POSIX group spe-demo) and `other` (spe-other); alice and bob map to
    their POSIX accounts explicitly, carol to none."""
    path.write_text(yaml.safe_dump({
        "trusted_authorities": ["dev.invalid"],
        "posix_accounts": {"alice": "spe-alice", "bob": "spe-bob"},
        "projects": [
            {"id": "demo", "title": "Demo", "posix_group": "spe-demo",
             "slurm_account": "demo",
             "entitlements": [f"{DEV_NAMESPACE}:group:spe:demo"]},
            {"id": "other", "title": "Other", "posix_group": "spe-other",
             "entitlements": [f"{DEV_NAMESPACE}:group:spe:other"]},
        ],
        "datasets": [{"id": "demo-cohorts", "location": str(DEMO_DATASET),
                      "projects": ["demo"]}],
    }))
    return path


@pytest.fixture(scope="session")
def cluster() -> SlurmCluster:
    return slurm_or_skip()


@pytest.fixture(scope="session")
def slurm_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="spe-slurm-test-", dir="/var/tmp"))
    home.chmod(0o711)
    yield home
    if not os.environ.get("SPE_TEST_KEEP"):  # keep it to debug a failure
        shutil.rmtree(home, ignore_errors=True)


def slurm_server(home: Path, catalog: Path, cluster: SlurmCluster, **env: str) -> Server:
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o711)  # the researchers' jobs pass through, whatever the umask
    return Server(home=home, catalog=catalog, env_extra={
        "SPE_EXECUTOR": "slurm", "SPE_POLICY_FILE": str(policy(home / "policy.yaml")),
        "SPE_SLURM_ENGINE_PATH": str(cluster.engines / "bin"),
        "SPE_SNAKEMAKE_BIN": str(cluster.engines / "bin" / "snakemake"),
        "SPE_SLURM_MAX_TIME_MINUTES": "1", "SPE_RECONCILE_SECONDS": "0.5", **env})


@pytest.fixture(scope="session")
def slurm_api_server(cluster: SlurmCluster, slurm_home: Path,
                     catalog_dir: Path) -> Iterator[Server]:
    server = slurm_server(slurm_home / "api", catalog_dir, cluster).start()
    yield server
    server.stop()
