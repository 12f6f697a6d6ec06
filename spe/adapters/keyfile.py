"""Secret keys kept in files: created once (random, hex, mode 0600; written whole before
it appears under its name, so processes starting together agree on one key) and refused
when other users may read them."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

KEY_BYTES = 32


def _create(path: Path, text: str) -> None:
    """Write ``text`` to a private temporary file, then link it to ``path``: another
    process sees no file or the whole key, never an empty one; the first link wins."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        with contextlib.suppress(FileExistsError):  # another process won: its key is it
            os.link(tmp, path)
    finally:
        tmp.unlink()


def load_or_create_key(path: Path, nbytes: int = KEY_BYTES) -> bytes:
    """The key in ``path``, made first if the file does not exist. ``ValueError`` if the
    file is open to other users or holds fewer than ``nbytes`` bytes of hex."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        _create(path, secrets.token_hex(nbytes) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(f"{path} is open to other users (mode {mode:04o}): chmod 600 it")
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise ValueError(f"{path} does not hold a hex key") from exc
    if len(key) < nbytes:
        raise ValueError(f"{path} holds {len(key)} bytes; a key has at least {nbytes}")
    return key
