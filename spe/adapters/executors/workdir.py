"""Hands a prepared run directory to the project's POSIX group, for jobs that run as the
researcher.

Layout and modes (the cluster's shared filesystem; BiBiGrid's default is 0777):

| path                          | mode | why                                              |
|-------------------------------|------|--------------------------------------------------|
| SPE_HOME/runs (the parent)    | 0711 | researchers pass through to their run; nobody |
|                               |      | lists the runs (the service's umask is 077)      |
| the run directory             | 3770 | group members create files (setgid keeps the     |
|                               |      | group); sticky: nobody renames what the service  |
|                               |      | wrote                                            |
| logs/, tmp/, work/ (and below)| 2770 | the engine writes here                           |
| what the service wrote        | 2750 | the workflow bundle, params, staged inputs, the  |
|                               | 0640 | job files: readable by the group, not writable   |

Files keep their execute bits (0750). Other users get nothing."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from spe.domain.jobdir import JOB_WRITABLE


def share_with_group(workdir: Path, group: str) -> None:
    """chgrp -R ``group`` and the modes above. ``KeyError`` for an unknown group."""
    gid = grp.getgrnam(group).gr_gid
    for name in JOB_WRITABLE:
        (workdir / name).mkdir(exist_ok=True)
    _passable(workdir.parent)
    os.chown(workdir, -1, gid)
    workdir.chmod(0o3770)
    for entry in workdir.iterdir():
        writable = entry.name in JOB_WRITABLE
        _apply(entry, gid, writable)
        if entry.is_dir() and not entry.is_symlink():
            for root, dirs, files in os.walk(entry):
                for name in dirs:
                    _apply(Path(root, name), gid, writable)
                for name in files:
                    _apply(Path(root, name), gid, writable)


def _passable(runs: Path) -> None:
    """Let every researcher pass through the runs folder (x), never list or write it."""
    mode = stat.S_IMODE(runs.stat().st_mode)
    if mode & 0o011 != 0o011:
        runs.chmod(mode | 0o011)


def _apply(path: Path, gid: int, writable: bool) -> None:
    if path.is_symlink():
        return
    os.chown(path, -1, gid)
    if path.is_dir():
        path.chmod(0o2770 if writable else 0o2750)
    else:
        executable = path.stat().st_mode & 0o100
        path.chmod((0o770 if executable else 0o660) if writable
                   else (0o750 if executable else 0o640))


def account_problem(user: str, group: str) -> str | None:
    """Why ``user`` cannot run a project's jobs on this cluster (no such account, or not a
    member of the project's ``group``), or None. Reads the same account database (files,
    LDAP/SSSD) as the cluster."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return f"there is no POSIX account {user!r} on the cluster"
    try:
        project = grp.getgrnam(group)
    except KeyError:
        return f"there is no POSIX group {group!r} on the cluster"
    if entry.pw_gid != project.gr_gid and user not in project.gr_mem:
        return f"the POSIX account {user!r} is not a member of the project's group {group!r}"
    return None
