"""Apptainer (Singularity), the runtime of the de.NBI clusters: ``apptainer exec`` with
everything of the host left out (``--containall --cleanenv --no-home``) but the binds.
The task's variables reach the container as ``APPTAINERENV_<NAME>`` in apptainer's own
environment (``--cleanenv`` keeps those; ``--env`` would split values at commas)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spe.domain.task_ports import Bind, Launch


@dataclass
class Apptainer:
    apptainer: str = "apptainer"
    name: str = "apptainer"

    def launch(self, image: Path, binds: list[Bind], workdir: str, env: dict[str, str],
               command: tuple[str, ...]) -> Launch:
        argv = [self.apptainer, "exec", "--containall", "--cleanenv", "--no-home",
                "--no-init", "--no-umask", "--pwd", workdir]
        for bind in binds:
            argv += ["--bind", f"{bind.host}:{bind.container}:{'ro' if bind.read_only else 'rw'}"]
        return Launch((*argv, str(image), *command),
                      {f"APPTAINERENV_{key}": value for key, value in env.items()})
