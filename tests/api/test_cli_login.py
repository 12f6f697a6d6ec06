"""`spe login` / `spe logout` and the token store, against a real OIDC provider on
127.0.0.1: the CLI runs as a subprocess, the user's approval is a provider method."""

from __future__ import annotations

import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import click
import keyring.core
import pytest
import requests
from keyring.backend import KeyringBackend
from keyring.backends import fail, null
from keyring.errors import KeyringError

from spe.cli import runs, tokens
from spe.cli.tokens import StoredToken
from tests.keyring_backend import NAME as KEYRING_NAME
from tests.keyring_backend import FileKeyring
from tests.oidc_provider import DEFAULT_SCOPE, OidcProvider

SERVICE = "https://spe.example.org"
CLI_CLIENT = "spe-cli"  # a public client whose tokens are meant for the service ("spe")
_CODE = re.compile(r"code: ([A-Z]{4}-[A-Z]{4})")
_ENV_DROPPED = ("SPE_TOKEN", "SPE_URL", "SPE_CLIENT_ID", "SPE_CLIENT_SECRET",
                "SPE_OIDC_ISSUER")


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    idp = OidcProvider(clients={"spe": "spe-secret"})
    idp.add_client(CLI_CLIENT, None, audience="spe")
    idp.add_user("alice", entitlements=["urn:geant:lifescience-ri.eu:group:spe#x"])
    idp.start()
    yield idp
    idp.stop()


def use_keyring(monkeypatch: pytest.MonkeyPatch, backend: KeyringBackend, name: str) -> None:
    """``backend`` for this process, the backend class ``name`` for `spe` subprocesses."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", name)
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)  # restored afterwards


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_CONFIG_HOME for both the subprocesses and the in-process token store; no
    usable keyring (keyring's ``fail`` backend), so the tokens go to the file, as on a
    headless server, and a developer's own keyring is never touched."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    for name in _ENV_DROPPED:
        monkeypatch.delenv(name, raising=False)
    use_keyring(monkeypatch, fail.Keyring(), "keyring.backends.fail.Keyring")
    return home


@pytest.fixture
def test_keyring(config_home: Path, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """A usable keyring (a file-based test backend) for this process and subprocesses."""
    path = tmp_path / "keyring.json"
    monkeypatch.setenv("SPE_TEST_KEYRING", str(path))
    use_keyring(monkeypatch, FileKeyring(), KEYRING_NAME)
    return path


class Login:
    """A running `spe login`, its stderr read line by line on a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spe.cli.main", "login", *args],
            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def user_code(self, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            match = _CODE.search(line)
            if match:
                return match.group(1)
        self.proc.kill()
        raise AssertionError(f"no user code within {timeout} s: {''.join(self.seen)}")

    def finish(self, timeout: float = 20) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.05)  # let the reader thread drain the pipe
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "".join(self.seen)


def spe(*args: str, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spe.cli.main", *args],
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def stored_services(config_home: Path) -> dict[str, dict[str, object]]:
    data = json.loads((config_home / "spe" / "tokens.json").read_text())
    return dict(data["services"])


def seed(provider: OidcProvider, expires_in: float = 300) -> StoredToken:
    """Stores tokens for SERVICE as a device login would have, without the browser."""
    body = provider.issue("alice", CLI_CLIENT, scope=DEFAULT_SCOPE + " offline_access",
                          refresh=True)
    token = StoredToken(issuer=provider.issuer, client_id=CLI_CLIENT,
                        access_token=body["access_token"], refresh_token=body["refresh_token"],
                        expires_at=time.time() + expires_in)
    tokens.save(SERVICE, token)
    return token


def introspect(provider: OidcProvider, token: str) -> dict[str, object]:
    resp = requests.post(provider.issuer + "introspect", data={"token": token},
                         auth=("spe", "spe-secret"), timeout=5)
    assert resp.status_code == 200
    return dict(resp.json())


def test_device_login_stores_private_tokens(provider: OidcProvider,
                                            config_home: Path) -> None:
    login = Login("--url", SERVICE + "/", "--issuer", provider.issuer, "--client-id",
                  CLI_CLIENT)
    provider.approve(login.user_code(), "alice")
    code, stderr = login.finish()
    assert code == 0, stderr
    assert provider.issuer + "device?user_code=" in stderr
    folder = config_home / "spe"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "tokens.json").stat().st_mode) == 0o600
    entry = stored_services(config_home)[SERVICE]
    assert entry["issuer"] == provider.issuer and entry["client_id"] == CLI_CLIENT
    access, refresh = str(entry["access_token"]), str(entry["refresh_token"])
    assert provider.token_active(access) and provider.token_active(refresh)
    assert access not in stderr and refresh not in stderr
    assert login.proc.stdout is not None and access not in login.proc.stdout.read()
    assert introspect(provider, access)["username"] == "alice"
    assert tokens.current_token(SERVICE) == access


def test_denied_login_exits_nonzero_with_a_clear_message(provider: OidcProvider,
                                                         config_home: Path) -> None:
    login = Login("--url", SERVICE, "--issuer", provider.issuer, "--client-id", CLI_CLIENT)
    provider.deny(login.user_code())
    code, stderr = login.finish()
    assert code != 0
    assert "denied" in stderr
    assert not (config_home / "spe" / "tokens.json").exists()


def test_slow_down_makes_the_cli_poll_five_seconds_slower(provider: OidcProvider,
                                                          config_home: Path) -> None:
    provider.enforced_interval = 3.0  # advertises 1 s, but wants 3 s between polls
    login = Login("--url", SERVICE, "--issuer", provider.issuer, "--client-id", CLI_CLIENT)
    user_code = login.user_code()
    deadline = time.monotonic() + 10
    while not provider.device_polls(user_code) and time.monotonic() < deadline:
        time.sleep(0.05)
    provider.approve(user_code, "alice")
    code, stderr = login.finish()
    assert code == 0, stderr
    polls = provider.device_polls(user_code)
    assert len(polls) == 2  # slow_down, then the token
    assert polls[1] - polls[0] >= 5.5


def test_login_needs_an_issuer(config_home: Path) -> None:
    result = spe("login", "--url", SERVICE)
    assert result.returncode != 0
    assert "SPE_OIDC_ISSUER" in result.stderr


def test_unreachable_issuer_fails_cleanly(provider: OidcProvider, config_home: Path) -> None:
    provider.down = True
    result = spe("login", "--url", SERVICE, "--issuer", provider.issuer)
    assert result.returncode != 0
    assert "identity provider unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_client_credentials_login_takes_the_secret_from_the_environment(
        provider: OidcProvider, config_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"SPE_CLIENT_ID": "spe", "SPE_CLIENT_SECRET": "spe-secret"}
    result = spe("login", "--client-credentials", "--url", SERVICE, "--issuer",
                 provider.issuer, env=env)
    assert result.returncode == 0, result.stderr
    entry = stored_services(config_home)[SERVICE]
    assert entry["grant"] == "client_credentials" and entry["refresh_token"] == ""
    first = str(entry["access_token"])
    assert introspect(provider, first)["client_id"] == "spe"
    # once it is close to expiry, the grant simply runs again
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stored = tokens.load(SERVICE)
    assert stored is not None
    stored.expires_at = time.time() + 10
    tokens.save(SERVICE, stored)
    renewed = tokens.current_token(SERVICE)
    assert renewed and renewed != first and provider.token_active(renewed)


def test_client_credentials_without_a_secret_fails_clearly(provider: OidcProvider,
                                                           config_home: Path) -> None:
    result = spe("login", "--client-credentials", "--url", SERVICE, "--issuer",
                 provider.issuer, env={"SPE_CLIENT_ID": "spe"})
    assert result.returncode != 0
    assert "SPE_CLIENT_SECRET" in result.stderr


def test_expired_access_token_is_refreshed_and_the_rotation_saved(
        provider: OidcProvider, config_home: Path) -> None:
    old = seed(provider, expires_in=-10)
    fresh = tokens.current_token(SERVICE)
    assert fresh and fresh != old.access_token and provider.token_active(fresh)
    stored = tokens.load(SERVICE)
    assert stored is not None and stored.access_token == fresh
    assert stored.refresh_token != old.refresh_token
    assert provider.token_active(stored.refresh_token)
    assert not provider.token_active(old.refresh_token)  # rotated: the old one is spent
    token_calls = provider.count("token")
    assert tokens.current_token(SERVICE) == fresh  # fresh now: no further refresh
    assert provider.count("token") == token_calls


def test_failed_refresh_tells_to_log_in_again(provider: OidcProvider, config_home: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    old = seed(provider, expires_in=-10)
    requests.post(provider.issuer + "revoke", data={"token": old.refresh_token,
                                                    "client_id": CLI_CLIENT}, timeout=5)
    assert tokens.current_token(SERVICE) is None
    assert "spe login" in capsys.readouterr().err


def test_logout_revokes_both_tokens_and_forgets_them(provider: OidcProvider,
                                                     config_home: Path) -> None:
    stored = seed(provider)
    result = spe("logout", "--url", SERVICE)
    assert result.returncode == 0, result.stderr
    assert provider.count("revoke") == 2
    assert introspect(provider, stored.access_token) == {"active": False}
    assert introspect(provider, stored.refresh_token) == {"active": False}
    assert SERVICE not in stored_services(config_home)


def test_logout_offline_still_forgets_and_warns(provider: OidcProvider,
                                                config_home: Path) -> None:
    seed(provider)
    provider.down = True
    result = spe("logout", "--url", SERVICE)
    assert result.returncode == 0, result.stderr
    assert "could not revoke" in result.stderr
    assert tokens.load(SERVICE) is None


def test_run_commands_use_the_stored_token(provider: OidcProvider,
                                           config_home: Path) -> None:
    stored = seed(provider)
    ctx = click.Context(runs.run, obj={"url": SERVICE, "token": ""})
    client = runs._client(ctx)
    assert client.session.headers["Authorization"] == f"Bearer {stored.access_token}"
    tokens.delete(SERVICE)
    with pytest.raises(click.ClickException, match="spe login") as err:
        runs._client(ctx)
    assert "spe dev token" in err.value.message


# -- the OS keyring --------------------------------------------------------------------------


def keyring_entries(path: Path) -> dict[str, dict[str, str]]:
    return {k: json.loads(v) for k, v in json.loads(path.read_text()).items()}


def test_device_login_keeps_the_tokens_in_the_keyring(
        provider: OidcProvider, config_home: Path, test_keyring: Path) -> None:
    login = Login("--url", SERVICE, "--issuer", provider.issuer, "--client-id", CLI_CLIENT)
    provider.approve(login.user_code(), "alice")
    code, stderr = login.finish()
    assert code == 0, stderr
    assert "keyring" in stderr
    secrets = keyring_entries(test_keyring)[f"spe/{SERVICE}"]
    access, refresh = secrets["access_token"], secrets["refresh_token"]
    assert provider.token_active(access) and provider.token_active(refresh)
    entry = stored_services(config_home)[SERVICE]
    assert entry["store"] == "keyring" and entry["issuer"] == provider.issuer
    text = (config_home / "spe" / "tokens.json").read_text()
    assert access not in text and refresh not in text  # the file holds no secret
    assert tokens.current_token(SERVICE) == access


def test_refresh_rotation_is_saved_in_the_keyring_and_logout_clears_it(
        provider: OidcProvider, config_home: Path, test_keyring: Path) -> None:
    old = seed(provider, expires_in=-10)
    assert old.access_token not in (config_home / "spe" / "tokens.json").read_text()
    fresh = tokens.current_token(SERVICE)
    assert fresh and fresh != old.access_token
    secrets = keyring_entries(test_keyring)[f"spe/{SERVICE}"]
    assert secrets["access_token"] == fresh and secrets["refresh_token"] != old.refresh_token
    assert fresh not in (config_home / "spe" / "tokens.json").read_text()
    result = spe("logout", "--url", SERVICE)
    assert result.returncode == 0, result.stderr
    assert provider.count("revoke") == 2 and not provider.token_active(fresh)
    assert keyring_entries(test_keyring) == {}
    assert SERVICE not in stored_services(config_home)


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()])
def test_unusable_keyring_backends_fall_back_to_the_private_file(
        provider: OidcProvider, config_home: Path, monkeypatch: pytest.MonkeyPatch,
        backend: KeyringBackend) -> None:
    use_keyring(monkeypatch, backend, f"{type(backend).__module__}.Keyring")
    stored = seed(provider)
    entry = stored_services(config_home)[SERVICE]
    assert "store" not in entry and entry["access_token"] == stored.access_token
    assert stat.S_IMODE((config_home / "spe" / "tokens.json").stat().st_mode) == 0o600
    assert tokens.current_token(SERVICE) == stored.access_token


def test_token_store_file_setting_bypasses_a_usable_keyring(
        provider: OidcProvider, config_home: Path, test_keyring: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPE_TOKEN_STORE", "file")
    stored = seed(provider)
    assert stored_services(config_home)[SERVICE]["access_token"] == stored.access_token
    assert not test_keyring.exists()


class _RefusingKeyring(FileKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringError("locked")


def test_a_keyring_that_refuses_the_write_leaves_the_tokens_in_the_file(
        provider: OidcProvider, config_home: Path, test_keyring: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    use_keyring(monkeypatch, _RefusingKeyring(), KEYRING_NAME)
    stored = seed(provider)
    assert "refused the tokens" in capsys.readouterr().err
    assert stored_services(config_home)[SERVICE]["access_token"] == stored.access_token
    assert tokens.current_token(SERVICE) == stored.access_token
