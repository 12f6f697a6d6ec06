"""The secret half of a stored login (access and refresh token) in the OS keyring.

``keyring`` picks the platform's keyring (macOS Keychain, Windows Credential Locker, the
Secret Service on a Linux desktop). Where none is usable it answers with its ``fail`` or
``null`` backend (a headless server, a container): then ``backend()`` is None and the
tokens stay in the 0600 token file, as does a keyring that refuses a write.
``SPE_TOKEN_STORE=file`` forces the file. ``PYTHON_KEYRING_BACKEND`` (keyring's own
setting) chooses a backend explicitly.
"""

from __future__ import annotations

import json
import os

import click
import keyring
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringError, PasswordDeleteError

SERVICE_NAME = "spe"
Secrets = dict[str, str]


def backend() -> KeyringBackend | None:
    """The usable keyring backend, or None (use the file)."""
    if os.environ.get("SPE_TOKEN_STORE", "").lower() == "file":
        return None
    found = keyring.get_keyring()
    if isinstance(found, fail.Keyring | null.Keyring):
        return None
    if isinstance(found, chainer.ChainerBackend) and not found.backends:
        return None
    return found


def name(found: KeyringBackend) -> str:
    return f"the {found.name} keyring"


def put(key: str, secrets: Secrets) -> str | None:
    """Stores ``secrets`` for ``key``; where they went (None: no usable keyring)."""
    found = backend()
    if found is None:
        return None
    try:
        found.set_password(SERVICE_NAME, key, json.dumps(secrets))
    except KeyringError as exc:
        click.echo(f"warning: {name(found)} refused the tokens ({type(exc).__name__}); "
                   "keeping them in the private token file", err=True)
        return None
    return name(found)


def get(key: str) -> Secrets | None:
    """The secrets stored for ``key``; None when the keyring has none (or is gone)."""
    found = backend()
    try:
        raw = found.get_password(SERVICE_NAME, key) if found is not None else None
    except KeyringError as exc:
        click.echo(f"warning: the keyring could not be read ({type(exc).__name__})", err=True)
        return None
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def remove(key: str) -> None:
    found = backend()
    if found is None:
        return
    try:
        found.delete_password(SERVICE_NAME, key)
    except PasswordDeleteError:
        pass  # nothing stored
    except KeyringError as exc:
        click.echo(f"warning: the keyring entry for {key} could not be removed "
                   f"({type(exc).__name__})", err=True)
