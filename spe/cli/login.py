"""``spe login`` and ``spe logout``: OAuth 2.0 sign-in at the service's OIDC provider
(Life Science Login in production).

- A person signs in with the Device Authorization Grant (RFC 8628): the command prints a
  link and a code, the user approves in a browser, the command polls the token endpoint
  (honouring ``interval``, ``slow_down``: +5 s, ``authorization_pending``,
  ``expired_token``, ``access_denied``) and stores the tokens (``spe.cli.tokens``).
- A service account (``--client-credentials``) runs the client_credentials grant with
  ``SPE_CLIENT_ID``/``SPE_CLIENT_SECRET`` from the environment: secrets never go on the
  command line, where ``ps`` shows them.
- ``spe logout`` revokes the refresh and access tokens (RFC 7009) and forgets them; when
  the provider cannot be reached it still forgets them, and says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from spe.cli import errors, tokens
from spe.cli.tokens import JSON, OAuthError, StoredToken, Unreachable

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPES = "openid profile email eduperson_entitlement ga4gh_passport_v1 offline_access"
LS_LOGIN_ISSUER = "https://login.aai.lifescience-ri.eu/oidc/"
SLOW_DOWN_SECONDS = 5
_DEVICE_FAILURES = {
    "expired_token": "the sign-in code expired before it was approved; run `spe login` again",
    "access_denied": "sign-in was denied at the identity provider",
}

url_option = click.option("--url", envvar="SPE_URL", default="http://127.0.0.1:8080",
                          show_default=True, help="Base URL of the service (SPE_URL).")


@click.command()
@url_option
@click.option("--issuer", envvar="SPE_OIDC_ISSUER", default="",
              help=f"OIDC issuer (SPE_OIDC_ISSUER), e.g. {LS_LOGIN_ISSUER}")
@click.option("--client-id", envvar="SPE_CLIENT_ID", default="spe", show_default=True,
              help="OAuth client id (SPE_CLIENT_ID).")
@click.option("--scope", default=None,
              help=f"Scopes to ask for (default for sign-in: {DEFAULT_SCOPES}).")
@click.option("--client-credentials", is_flag=True,
              help="Service account: client_credentials grant with SPE_CLIENT_ID and "
                   "SPE_CLIENT_SECRET from the environment.")
def login(url: str, issuer: str, client_id: str, scope: str | None,
          client_credentials: bool) -> None:
    """Sign in and store a token for the service at --url."""
    if not issuer:
        raise click.ClickException(f"no issuer: pass --issuer or set SPE_OIDC_ISSUER (Life "
                                   f"Science Login: {LS_LOGIN_ISSUER})")
    try:
        meta = tokens.discover(issuer)
        if client_credentials:
            stored = _client_credentials(meta, client_id, scope)
        else:
            stored = _device_flow(meta, client_id, scope or DEFAULT_SCOPES)
    except OAuthError as exc:
        raise click.ClickException(f"sign-in failed: {exc}") from None
    except Unreachable as exc:
        raise errors.Unreachable(f"sign-in failed: {exc}") from None
    where = tokens.save(url, stored)
    minutes = max(0, int(stored.expires_at - time.time())) // 60
    click.echo(f"signed in to {url}; token stored in {where} (valid for {minutes} min"
               f"{', renewed automatically' if stored.refresh_token else ''})", err=True)


@click.command()
@url_option
def logout(url: str) -> None:
    """Revoke and forget the stored tokens of the service at --url."""
    stored = tokens.load(url)
    if stored is None:
        click.echo(f"not signed in to {url}", err=True)
        return
    try:
        _revoke(stored)
    except (OAuthError, Unreachable) as exc:
        click.echo(f"warning: could not revoke the tokens at {stored.issuer} ({exc}); they "
                   "are forgotten here but stay valid until they expire", err=True)
    finally:
        tokens.delete(url)
    click.echo(f"signed out of {url}", err=True)


# -- grants ------------------------------------------------------------------------------


def _client_credentials(meta: JSON, client_id: str, scope: str | None) -> StoredToken:
    body = tokens.token_grant(tokens.endpoint(meta, "token_endpoint"), client_id,
                              "client_credentials", require_secret=True,
                              **({"scope": scope} if scope else {}))
    return tokens.from_response(meta["issuer"], client_id, body, "client_credentials",
                                time.time())


def _device_flow(meta: JSON, client_id: str, scope: str) -> StoredToken:
    start = tokens.endpoint(meta, "device_authorization_endpoint")
    grant = tokens.device_authorization(start, client_id, scope)
    device_code, user_code = grant.get("device_code"), grant.get("user_code")
    if not isinstance(device_code, str) or not isinstance(user_code, str):
        raise Unreachable(f"{start}: the answer has no device_code or user_code")
    expires_in = _number(grant.get("expires_in"), 600)
    _prompt(grant, user_code, expires_in)
    body = poll(tokens.endpoint(meta, "token_endpoint"), device_code, client_id,
                interval=_number(grant.get("interval"), 5), expires_in=expires_in)
    return tokens.from_response(meta["issuer"], client_id, body, "device_code", time.time())


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else default


def _prompt(grant: JSON, user_code: str, expires_in: float) -> None:
    complete, uri = grant.get("verification_uri_complete"), grant.get("verification_uri")
    if isinstance(complete, str):
        click.echo(f"To sign in, open this link in a browser:\n    {complete}", err=True)
    if isinstance(uri, str):
        click.echo(f"{'or open' if complete else 'To sign in, open'} {uri} and enter the "
                   f"code: {user_code}", err=True)
    else:
        click.echo(f"code: {user_code}", err=True)
    click.echo(f"Waiting for the sign-in (the code expires in {int(expires_in) // 60} min)...",
               err=True)


def poll(token_url: str, device_code: str, client_id: str, *, interval: float,
         expires_in: float, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> JSON:
    """Polls the token endpoint until the user approved (the token response), denied, or
    the code expired (``ClickException``)."""
    deadline = clock() + expires_in
    while True:
        sleep(interval)
        if clock() >= deadline:
            raise click.ClickException(_DEVICE_FAILURES["expired_token"])
        try:
            return tokens.token_grant(token_url, client_id, DEVICE_GRANT,
                                      device_code=device_code)
        except OAuthError as exc:
            if exc.error == "slow_down":
                interval += SLOW_DOWN_SECONDS
            elif exc.error != "authorization_pending":
                message = _DEVICE_FAILURES.get(exc.error, f"sign-in failed: {exc}")
                raise click.ClickException(message) from None


def _revoke(stored: StoredToken) -> None:
    url = tokens.endpoint(tokens.discover(stored.issuer), "revocation_endpoint")
    tokens.revoke(url, stored)
