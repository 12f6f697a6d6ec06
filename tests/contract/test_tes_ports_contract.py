"""The contracts of the TES ports (``spe/domain/ports.py``): ``ContainerRuntime`` (Charliecloud,
Apptainer), ``Images`` (the directory image store) and ``TaskDriver`` (the driver on a POSIX
filesystem), each run against every adapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spe.adapters.containers import task_driver
from spe.adapters.containers.apptainer import Apptainer
from spe.adapters.containers.charliecloud import Charliecloud
from spe.adapters.containers.driver_files import LocalTaskDriver
from spe.adapters.containers.images import (
    DirectoryImages,
    image_digest,
    import_image,
    load_catalog,
)
from spe.domain.jobdir import JobDir
from spe.domain.task_ports import Bind, ContainerRuntime, Images, TaskDriver

RUNTIMES: list[ContainerRuntime] = [Charliecloud("/usr/bin/ch-run"), Apptainer("apptainer")]
DRIVERS: list[TaskDriver] = [LocalTaskDriver(sys.executable)]


@pytest.mark.parametrize("runtime", RUNTIMES, ids=lambda r: r.name)
def test_a_runtime_launches_exactly_the_command_with_the_binds_and_environment(
        runtime: ContainerRuntime) -> None:
    binds = [Bind(Path("/jobs/1/work/data"), "/data"), Bind(Path("/jobs/1/work/tmp"), "/tmp")]
    env = {"A": "$HOME; rm -rf /", "B": "x,y=z", "PATH": "/bin"}
    command = ("sh", "-c", "echo \"$A\"")
    launch = runtime.launch(Path("/images/sha256-1"), binds, "/data", env, command)
    assert all(isinstance(a, str) for a in launch.argv)
    assert launch.argv[-len(command):] == command
    assert "/images/sha256-1" in launch.argv
    for bind in binds:
        assert any(str(bind.host) in a and bind.container in a for a in launch.argv)
    assert "/data" in launch.argv
    carried = [*launch.argv, *launch.env.values()]
    for key, value in env.items():  # verbatim, never split nor expanded
        assert any(value in c and key in (c + "".join(launch.env)) for c in carried), key


@pytest.fixture
def images(tmp_path: Path) -> Images:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("v1")
    import_image(tmp_path / "store", root, "tool", "1", aliases=("t",))
    return DirectoryImages(tmp_path / "store")


def test_an_image_store_hashes_what_its_catalog_pins(images: Images) -> None:
    entry = images.catalog().resolve("t")
    assert images.root(entry).is_dir()
    assert images.digest(entry) == entry.digest
    (images.root(entry) / "bin" / "tool").write_text("v2")
    assert images.digest(entry) != entry.digest


def test_an_image_digest_sees_every_change(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("v1")
    store = tmp_path / "store"
    entry = import_image(store, root, "tool", "1", aliases=("t",))
    assert load_catalog(store).resolve("t:latest") == entry
    imported = store / entry.folder
    assert image_digest(imported) == entry.digest
    assert (imported / "data").is_dir() and (imported / "etc" / "passwd").is_file()
    before = entry.digest
    (imported / "bin" / "tool").chmod(0o755)
    assert image_digest(imported) != before
    (imported / "bin" / "tool").chmod(0o644)
    (imported / "bin" / "link").symlink_to("/etc/shadow")
    assert image_digest(imported) != before
    assert oct(imported.stat().st_mode & 0o777) == "0o700"  # private without a group


@pytest.mark.parametrize("driver", DRIVERS, ids=lambda d: type(d).__name__)
def test_outputs_are_collected_without_following_a_link_out(tmp_path: Path,
                                                            driver: TaskDriver) -> None:
    job = JobDir(tmp_path / "job")
    driver.mounts(job, ["data", "tmp"], ["/data/sub"])
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    (job.work / "data" / "ok.txt").write_text("ok")
    (job.work / "data" / "sub" / "a.txt").write_text("a")
    (job.work / "data" / "link.txt").symlink_to(secret)
    (job.work / "data" / "dirlink").symlink_to(tmp_path)
    assert [f.path for f in driver.collect(job, "/data/ok.txt", False, False)] == ["/data/ok.txt"]
    assert driver.collect(job, "/data/link.txt", False, False) == []
    assert driver.collect(job, "/data/dirlink/secret.txt", False, False) == []
    assert driver.collect(job, "/data/dirlink", True, False) == []
    assert [f.path for f in driver.collect(job, "/data", True, False)] == [
        "/data/ok.txt", "/data/sub/a.txt"]
    assert [f.path for f in driver.collect(job, "/data/*.txt", False, True)] == [
        "/data/ok.txt"]


def run_driver(tmp_path: Path, steps: list[dict[str, object]]) -> tuple[int, JobDir]:
    job = JobDir(tmp_path / "job")
    job.root.mkdir(parents=True)
    argv = LocalTaskDriver(sys.executable).install(job, {"executors": steps})
    proc = subprocess.run(argv, cwd=job.root, capture_output=True, timeout=60, check=False,
                          env={"PATH": os.environ["PATH"]})
    return proc.returncode, job


def test_the_driver_runs_executors_in_order_and_stops_at_a_failure(tmp_path: Path) -> None:
    out = JobDir(tmp_path / "job").container("/data/copy.txt")
    code, job = run_driver(tmp_path, [
        {"argv": ["sh", "-c", "echo one; echo e >&2; exit 4"], "ignore_error": True,
         "stdout": str(out)},
        {"argv": ["sh", "-c", "exit 5"]},
        {"argv": ["sh", "-c", "echo never"]}])
    assert code == 5
    records = LocalTaskDriver().records(job)
    assert [r.exit_code for r in records] == [4, 5]
    assert all(r.start_time and r.end_time for r in records)
    assert job.executor_stream(0, "stdout").read_text() == "one\n"
    assert job.executor_stream(0, "stderr").read_text() == "e\n"
    assert out.read_text() == "one\n"
    assert not job.executor_stream(2, "stdout").exists()


def test_the_driver_follows_no_link_an_executor_left_in_the_tree(tmp_path: Path) -> None:
    host = tmp_path / "host-file"
    host.write_text("the host's own\n")
    job = JobDir(tmp_path / "job")
    link, target = job.container("/data/out.txt"), job.container("/data/safe/out.txt")
    code, job = run_driver(tmp_path, [
        {"argv": ["sh", "-c", f"mkdir -p {link.parent} && ln -s {host} {link}"]},
        {"argv": ["sh", "-c", "echo overwrite"], "stdout": str(link)},
        {"argv": ["sh", "-c", "echo kept"], "stdout": str(target)},
        {"argv": ["cat"], "stdin": str(link)}])
    assert host.read_text() == "the host's own\n"  # never written through the link
    assert target.read_text() == "kept\n"
    assert code == 127  # stdin through a link: the executor does not start
    assert [r.exit_code for r in LocalTaskDriver().records(job)] == [0, 0, 0, 127]


def test_the_driver_is_standard_library_only() -> None:
    text = Path(task_driver.__file__).read_text()
    imports = {line.split()[1].split(".")[0] for line in text.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "json", "os", "pwd", "shutil", "signal", "subprocess",
                       "sys", "datetime", "pathlib", "typing"}, imports


