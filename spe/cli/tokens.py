"""Tokens stored by ``spe login``, and the OAuth 2.0 client (authlib) that renews them.

The store is ``$XDG_CONFIG_HOME/spe/tokens.json`` (default ``~/.config/spe/``): the folder
is mode 0700, the file 0600 and replaced atomically; one entry per service URL with the
issuer, client id, access token, refresh token and expiry. Where the OS keyring is usable
(``spe.cli.keyring_store``) the access and refresh tokens go there instead and the file
entry holds only the rest. Read-modify-write cycles (save,
delete, renew) hold an exclusive lock on ``tokens.json.lock``, so two ``spe`` processes
never both spend one (rotating) refresh token.

``current_token(url)`` renews an access token within ``REFRESH_MARGIN`` seconds of its
expiry: with the refresh token (``refresh_token`` grant; a rotated refresh token is saved),
or, for a service account, by running the ``client_credentials`` grant again with
``SPE_CLIENT_ID``/``SPE_CLIENT_SECRET`` from the environment. Client secrets come only
from the environment, never from argv. Tokens are never printed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import click
import requests
from authlib.integrations.base_client.errors import OAuthError as AuthlibOAuthError
from authlib.integrations.requests_client import OAuth2Session
from requests.auth import AuthBase

from spe.cli import keyring_store

TIMEOUT = 30.0
REFRESH_MARGIN = 60.0
DEFAULT_LIFETIME = 300  # assumed when a token response has no expires_in
STORE_VERSION = 1
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
JSON = dict[str, Any]


class OAuthError(Exception):
    """The identity provider answered with an OAuth error (``error`` is its code)."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error


class Unreachable(Exception):
    """The identity provider could not be reached or gave an unusable answer."""


# -- the store ---------------------------------------------------------------------------


@dataclass
class StoredToken:
    issuer: str
    client_id: str
    access_token: str
    expires_at: float
    refresh_token: str = ""
    grant: str = "device_code"  # or "client_credentials"

    def fresh(self, now: float) -> bool:
        return self.expires_at - now > REFRESH_MARGIN

    @classmethod
    def from_json(cls, data: Any) -> StoredToken | None:
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not {"issuer", "client_id", "access_token",
                                               "expires_at"} <= data.keys():
            return None
        try:
            return cls(**{k: v for k, v in data.items() if k in names})
        except TypeError:
            return None


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "spe"


def store_path() -> Path:
    return config_dir() / "tokens.json"


def service_key(url: str) -> str:
    return url.rstrip("/")


def _private_dir() -> Path:
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    return folder


@contextmanager
def _locked() -> Iterator[None]:
    fd = os.open(_private_dir() / "tokens.json.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_all() -> dict[str, JSON]:
    try:
        data = json.loads(store_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        click.echo(f"warning: ignoring unreadable token store {store_path()}: "
                   f"{type(exc).__name__}", err=True)
        return {}
    services = data.get("services") if isinstance(data, dict) else None
    return services if isinstance(services, dict) else {}


def _write_all(services: dict[str, JSON]) -> Path:
    path = store_path()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    body = json.dumps({"version": STORE_VERSION, "services": services}, indent=2).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


_SECRETS = ("access_token", "refresh_token")


def _to_entry(key: str, token: StoredToken) -> tuple[JSON, str | None]:
    """The store entry of ``token``: its secrets go to the keyring when one is usable
    (the entry then holds none); the second value names that keyring."""
    entry = asdict(token)
    where = keyring_store.put(key, {name: entry[name] for name in _SECRETS})
    if where is not None:
        entry.update(dict.fromkeys(_SECRETS, ""), store="keyring")
    return entry, where


def _from_entry(key: str, entry: Any) -> StoredToken | None:
    if isinstance(entry, dict) and entry.get("store") == "keyring":
        secrets = keyring_store.get(key)
        if secrets is None:
            return None
        entry = {**entry, **{name: secrets.get(name, "") for name in _SECRETS}}
    return StoredToken.from_json(entry)


def load(url: str) -> StoredToken | None:
    key = service_key(url)
    return _from_entry(key, _read_all().get(key))


def save(url: str, token: StoredToken) -> str:
    """Stores ``token`` for the service at ``url``; says where (the keyring or the file)."""
    key = service_key(url)
    with _locked():
        services = _read_all()
        services[key], where = _to_entry(key, token)
        path = _write_all(services)
        return where or str(path)


def delete(url: str) -> bool:
    """Forgets the service's tokens; False when there were none."""
    key = service_key(url)
    with _locked():
        services = _read_all()
        entry = services.pop(key, None)
        if entry is None:
            return False
        if isinstance(entry, dict) and entry.get("store") == "keyring":
            keyring_store.remove(key)
        _write_all(services)
        return True


def current_token(url: str, *, clock: Callable[[], float] = time.time) -> str | None:
    """A usable access token for ``url``, renewed when close to expiry; None when there is
    none (or renewal failed: the message then says to run ``spe login`` again)."""
    key = service_key(url)
    if not store_path().exists():
        return None
    with _locked():
        services = _read_all()
        stored = _from_entry(key, services.get(key))
        if stored is None:
            return None
        now = clock()
        if stored.fresh(now):
            return stored.access_token
        try:
            renewed = renew(stored, now)
        except (OAuthError, Unreachable) as exc:
            return _renewal_failed(url, stored, now, exc)
        services[key], _ = _to_entry(key, renewed)
        _write_all(services)
        return renewed.access_token


def _renewal_failed(url: str, stored: StoredToken, now: float,
                    exc: OAuthError | Unreachable) -> str | None:
    if isinstance(exc, Unreachable) and stored.expires_at > now:
        click.echo(f"warning: could not renew the token ({exc}); using it until it "
                   "expires", err=True)
        return stored.access_token
    click.echo(f"your session for {url} could not be renewed ({exc}); run `spe login` "
               "again", err=True)
    return None


def renew(stored: StoredToken, now: float) -> StoredToken:
    """A fresh token for ``stored``: the refresh grant, or the client_credentials grant
    again for a service account."""
    meta = discover(stored.issuer)
    token_url = endpoint(meta, "token_endpoint")
    if stored.grant == "client_credentials":
        body = token_grant(token_url, stored.client_id, "client_credentials",
                           require_secret=True)
    elif stored.refresh_token:
        with provider_errors(token_url):
            oauth = session(stored.client_id)
            body = dict(oauth.refresh_token(token_url, refresh_token=stored.refresh_token))
    else:
        raise OAuthError("invalid_grant", "no refresh token is stored")
    return from_response(stored.issuer, stored.client_id, body, stored.grant, now,
                         previous_refresh=stored.refresh_token)


def from_response(issuer: str, client_id: str, body: JSON, grant: str, now: float, *,
                  previous_refresh: str = "") -> StoredToken:
    """A StoredToken from a token endpoint response (RFC 6749 section 5.1)."""
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise Unreachable("the token response has no access_token")
    lifetime = body.get("expires_in")
    if not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = DEFAULT_LIFETIME
    refresh = body.get("refresh_token")
    return StoredToken(issuer=issuer, client_id=client_id, access_token=access,
                       expires_at=now + float(lifetime),
                       refresh_token=refresh if isinstance(refresh, str) else previous_refresh,
                       grant=grant)


# -- the OAuth client --------------------------------------------------------------------


def client_secret(client_id: str) -> str:
    """``SPE_CLIENT_SECRET`` when it belongs to ``client_id`` (``SPE_CLIENT_ID`` unset or
    equal), else "" (a public client)."""
    env_id = os.environ.get("SPE_CLIENT_ID", "")
    return os.environ.get("SPE_CLIENT_SECRET", "") if env_id in ("", client_id) else ""


_BASIC = "client_secret_basic"


def _form_encoded_basic(client: Any, method: str, uri: str, headers: dict[str, str],
                        body: str) -> tuple[str, dict[str, str], str]:
    """HTTP Basic with the client id and secret form-encoded first (RFC 6749 section
    2.3.1); authlib's own ``client_secret_basic`` leaves them as they are."""
    pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return uri, headers, body


def session(client_id: str, *, require_secret: bool = False) -> OAuth2Session:
    """An authlib OAuth 2.0 client for ``client_id``: HTTP Basic for a confidential client
    (``SPE_CLIENT_SECRET``), ``client_id`` in the form for a public one."""
    secret = client_secret(client_id)
    if require_secret and not secret:
        raise OAuthError("invalid_client", "set SPE_CLIENT_ID and SPE_CLIENT_SECRET")
    method = _BASIC if secret else "none"
    oauth = OAuth2Session(client_id, secret or None, token_endpoint_auth_method=method,
                          revocation_endpoint_auth_method=method, default_timeout=TIMEOUT)
    oauth.register_client_auth_method((_BASIC, _form_encoded_basic))
    oauth.headers["Accept"] = "application/json"
    return oauth


@contextmanager
def provider_errors(url: str) -> Iterator[None]:
    """Maps what authlib and requests raise to ``OAuthError`` (the provider said no) and
    ``Unreachable`` (no usable answer)."""
    try:
        yield
    except AuthlibOAuthError as exc:
        raise OAuthError(str(exc.error), exc.description or "") from None
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        raise Unreachable(f"identity provider unreachable: {url}: HTTP {status}") from None
    except (requests.RequestException, ValueError) as exc:
        raise Unreachable(f"identity provider unreachable: {url}: "
                          f"{type(exc).__name__}") from None


def token_grant(token_url: str, client_id: str, grant_type: str, *,
                require_secret: bool = False, **params: str) -> JSON:
    """The token endpoint's answer to one grant (``client_credentials``, the device code
    grant, ...)."""
    with provider_errors(token_url):
        oauth = session(client_id, require_secret=require_secret)
        return dict(oauth.fetch_token(token_url, grant_type=grant_type, **params))


def device_authorization(url: str, client_id: str, scope: str) -> JSON:
    """The device authorization request (RFC 8628 section 3.1); authlib's client has no
    call for it, so it is a POST with authlib's client authentication."""
    with provider_errors(url):
        oauth = session(client_id)
        client_auth = cast(AuthBase, oauth.client_auth(oauth.token_endpoint_auth_method))
        resp = oauth.post(url, data={"scope": scope}, auth=client_auth)
        return _json_answer(resp, url)


def revoke(url: str, stored: StoredToken) -> None:
    """Revokes the refresh token first (it outlives the access token), then the access
    token (RFC 7009: 200 also for tokens the provider no longer knows)."""
    pairs = [(stored.refresh_token, "refresh_token"), (stored.access_token, "access_token")]
    with provider_errors(url):
        oauth = session(stored.client_id)
        for token, hint in pairs:
            if token:
                resp = oauth.revoke_token(  # type: ignore[no-untyped-call]
                    url, token=token, token_type_hint=hint)
                with resp:
                    if resp.status_code != 200:
                        raise OAuthError("revocation_failed", f"HTTP {resp.status_code}")


def _json_answer(resp: requests.Response, url: str) -> JSON:
    body = _json_or_none(resp)
    if resp.status_code == 200 and body is not None:
        return body
    if body is not None and isinstance(body.get("error"), str) and resp.status_code < 500:
        description = body.get("error_description")
        raise OAuthError(body["error"], description if isinstance(description, str) else "")
    raise Unreachable(f"identity provider unreachable: {url}: HTTP {resp.status_code}")


def discover(issuer: str) -> JSON:
    """The issuer's discovery document, checked to name that same issuer (a trailing
    slash aside; its ``issuer`` is the exact spelling to store)."""
    url = issuer.rstrip("/") + DISCOVERY_SUFFIX
    try:
        resp = requests.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise Unreachable(f"identity provider unreachable: {url}: "
                          f"{type(exc).__name__}") from None
    body = _json_or_none(resp)
    if resp.status_code != 200 or body is None:
        raise Unreachable(f"identity provider unreachable: {url}: HTTP {resp.status_code}")
    named = body.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer.rstrip("/"):
        raise Unreachable(f"{url} names another issuer: {named!r}")
    return body


def endpoint(meta: JSON, name: str) -> str:
    url = meta.get(name)
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise OAuthError("unsupported", f"the identity provider offers no {name}")
    return url


def _json_or_none(resp: requests.Response) -> JSON | None:
    with resp:
        try:
            body = resp.json()
        except ValueError:
            return None
    return body if isinstance(body, dict) else None
