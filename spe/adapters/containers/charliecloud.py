"""Charliecloud's ``ch-run``: unprivileged, the image a read-only directory, binds only
of folders that exist in the image (``spe image import`` creates the task mount points)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spe.domain.task_ports import Bind, Launch


@dataclass
class Charliecloud:
    """``--no-passwd``: the image's own /etc/passwd, not the host's; ``--unset-env='*'``
    then ``--set-env`` for each variable (``--env-no-expand``: a ``$`` stays a ``$``).
    ch-run binds read-write only; inputs are read-only copies (see docs/tes-compatibility
    .md)."""

    ch_run: str = "ch-run"
    name: str = "charliecloud"

    def launch(self, image: Path, binds: list[Bind], workdir: str, env: dict[str, str],
               command: tuple[str, ...]) -> Launch:
        argv = [self.ch_run, "--no-passwd", "--unset-env=*", "--env-no-expand"]
        argv += [f"--set-env={k}={v}" for k, v in env.items()]
        for bind in binds:
            argv += ["-b", f"{bind.host}:{bind.container}"]
        return Launch((*argv, "-c", workdir, str(image), "--", *command))
