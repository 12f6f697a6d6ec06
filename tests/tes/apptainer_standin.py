#!/usr/bin/env python3
"""A stand-in for ``apptainer`` (not installable here), put on the service's PATH by the
tests: it accepts exactly the command line the Apptainer builder emits (anything else
fails), records it with the APPTAINERENV_ variables in ``apptainer-calls.jsonl`` in the
job's directory, and runs the same container with Charliecloud, so the task's result
shows the builder's binds, working directory and environment were all there."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FLAGS = {"--containall", "--cleanenv", "--no-home", "--no-init", "--no-umask"}


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "exec":
        sys.stderr.write(f"stand-in: unexpected command {argv[:1]}\n")
        return 64
    args, flags, binds, pwd = argv[1:], set(), [], ""
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag in FLAGS:
            flags.add(flag)
        elif flag == "--pwd":
            pwd = args.pop(0)
        elif flag == "--bind":
            binds.append(args.pop(0))
        else:
            sys.stderr.write(f"stand-in: unknown flag {flag}\n")
            return 64
    if flags != FLAGS or not pwd or len(args) < 2:
        sys.stderr.write(f"stand-in: incomplete command line {argv}\n")
        return 64
    image, command = args[0], args[1:]
    env = {k.removeprefix("APPTAINERENV_"): v for k, v in os.environ.items()
           if k.startswith("APPTAINERENV_")}
    with Path("apptainer-calls.jsonl").open("a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": argv, "env": env}) + "\n")
    ch = ["ch-run", "--no-passwd", "--unset-env=*", "--env-no-expand",
          *(f"--set-env={k}={v}" for k, v in env.items())]
    for bind in binds:
        host, container, mode = bind.rsplit(":", 2)
        if mode not in ("ro", "rw"):
            return 64
        ch += ["-b", f"{host}:{container}"]
    os.execv("/usr/bin/ch-run", [*ch, "-c", pwd, image, "--", *command])  # noqa: S606
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
