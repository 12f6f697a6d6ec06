"""The ports of TES tasks: the container runtime, the image store and the task driver.
Each docstring is the contract ``tests/contract/test_tes_ports_contract.py`` checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from spe.domain.images import ImageCatalog, ImageEntry
from spe.domain.jobdir import JobDir
from spe.domain.models import JSON


@dataclass(frozen=True)
class Bind:
    """A folder of the job bound into a container at ``container`` (an absolute path)."""

    host: Path
    container: str
    read_only: bool = False


@dataclass(frozen=True)
class Launch:
    """How to start one executor: the runtime's argv, and variables the runtime itself
    reads from its own environment (added to the driver's minimal one)."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


class ContainerRuntime(Protocol):
    """An HPC container runtime (Charliecloud, Apptainer). ``launch`` says how to run
    ``command`` in the image rooted at ``image``: the image read-only, only ``binds``
    mounted, no host home, the environment exactly ``env``, starting in ``workdir``. The
    argv is a list: nothing of it passes through a shell."""

    name: str

    def launch(self, image: Path, binds: list[Bind], workdir: str, env: dict[str, str],
               command: tuple[str, ...]) -> Launch: ...


class Images(Protocol):
    """The site's image store and catalog (``spe.domain.images``).

    - ``catalog()`` is the allowlist as it is now.
    - ``root(entry)`` is where the entry's image root lies.
    - ``digest(entry)`` hashes that root as the catalog does (what a task will run, to
      compare with the pinned digest)."""

    def catalog(self) -> ImageCatalog: ...

    def root(self, entry: ImageEntry) -> Path: ...

    def digest(self, entry: ImageEntry) -> str: ...


@dataclass(frozen=True)
class ExecutorRecord:
    """What the task driver recorded of one executor: its times and exit code."""

    index: int
    start_time: datetime | None
    end_time: datetime | None
    exit_code: int | None


@dataclass(frozen=True)
class Found:
    """An output file found in a task's container tree: its host path and container path."""

    host: Path
    path: str


class TaskDriver(Protocol):
    """Runs a TES task's executors inside its job, in order, and reads back what it did.

    - ``install(job, plan)`` writes the plan (each executor's runtime argv, its stdin,
      stdout and stderr as job paths, ``ignore_error``) and the driver into the job and
      returns the job's argv. The driver stops at the first non-zero exit unless that
      executor ignores errors, copies each executor's streams to ``logs/`` and exits with
      the task's exit code.
    - ``records(job)`` are the executors it ran so far, in order (none before it starts;
      an unreadable record is no record).
    - ``collect(job, container_path, directory, pattern)`` lists the regular files of the
      task's container tree at ``container_path`` (a whole folder with ``directory``, the
      matches of a wildcard ``pattern``), never following a symlink or leaving the tree.
    - ``write(job, container_path, content)`` puts an input's content in the tree;
      ``host(job, container_path)`` is a container path's place in the job.
    - ``mounts(job, points, folders)`` creates the folders of those mount points (and the
      container ``folders`` below them: volumes, working directories) and returns the
      binds."""

    def install(self, job: JobDir, plan: JSON) -> tuple[str, ...]: ...

    def records(self, job: JobDir) -> list[ExecutorRecord]: ...

    def collect(self, job: JobDir, container_path: str, directory: bool,
                pattern: bool) -> list[Found]: ...

    def write(self, job: JobDir, container_path: str, content: bytes) -> None: ...

    def host(self, job: JobDir, container_path: str) -> Path: ...

    def mounts(self, job: JobDir, points: list[str], folders: list[str]) -> list[Bind]: ...
