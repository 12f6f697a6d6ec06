"""Issue 11, finding 12: every response carries a Content-Security-Policy and
X-Frame-Options (not only the reviewer page), and Swagger UI is a setting
(`SPE_SWAGGER_UI`), off by default in production mode (`SPE_AUTH_MODE=oidc`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from spe.config import Settings
from tests.helpers import WES, Server
from tests.oidc_provider import OidcProvider


def assert_protected(resp: requests.Response) -> None:
    csp = resp.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, (resp.url, resp.status_code, csp)
    assert resp.headers.get("X-Frame-Options") == "DENY", resp.url
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", resp.url


def test_every_page_sends_csp_and_frame_options(server: Server) -> None:
    auth = {"Authorization": f"Bearer {server.token('hedda')}"}
    pages = {  # path -> the status it has
        f"{WES}/service-info": 200, f"{WES}/runs": 200, "/spe/v1/me": 200,
        "/healthz": 200, "/readyz": 200, "/metrics": 404, "/spe/ui/index.html": 200,
        f"{WES}/ui/": 200, "/spe/v1/ui/": 200, f"{WES}/openapi.json": 200,
        f"{WES}/runs/nope": 404, "/nothing-here": 404,
    }
    for path, status in pages.items():
        resp = requests.get(server.url + path, headers=auth, timeout=30,
                            allow_redirects=False)
        assert resp.status_code == status, (path, resp.status_code, resp.text[:200])
        assert_protected(resp)
    assert_protected(requests.get(server.url + f"{WES}/runs", timeout=30))  # 401
    swagger = requests.get(server.url + f"{WES}/ui/", timeout=30)
    assert "script-src 'self' 'unsafe-inline'" in swagger.headers["Content-Security-Policy"]
    api = requests.get(server.url + "/healthz", timeout=30)
    assert api.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # the reviewer page keeps its own, stricter policy (it names the issuer)
    page = requests.get(server.url + "/spe/ui/index.html", timeout=30)
    assert "connect-src" in page.headers["Content-Security-Policy"]


def test_swagger_ui_setting_defaults_to_off_in_production_mode(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("projects: []\n")
    oidc = {"auth_mode": "oidc", "oidc_issuer": "https://login.example.org/",
            "policy_file": policy, "home": tmp_path}
    assert Settings(**oidc).swagger_ui_enabled is False  # type: ignore[arg-type]
    assert Settings(**oidc, swagger_ui=True).swagger_ui_enabled is True  # type: ignore[arg-type]
    assert Settings(home=tmp_path).swagger_ui_enabled is True
    assert Settings(home=tmp_path, swagger_ui=False).swagger_ui_enabled is False


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory,
               catalog_dir: Path) -> Iterator[Server]:
    idp = OidcProvider(clients={"spe": "spe-secret"}).start()
    home = tmp_path_factory.mktemp("production")
    policy = home.parent / "production-policy.yaml"
    policy.write_text(yaml.safe_dump({"projects": [
        {"id": "proj-a", "title": "A", "entitlements": ["urn:geant:example.org:group:a"]}]}))
    server = Server(home=home, catalog=catalog_dir, env_extra={
        "SPE_AUTH_MODE": "oidc", "SPE_OIDC_ISSUER": idp.issuer,
        "SPE_POLICY_FILE": str(policy)})
    try:
        yield server.start()
    finally:
        server.stop()
        idp.stop()


def test_swagger_ui_is_off_by_default_in_production_mode(production: Server) -> None:
    for path in (f"{WES}/ui/", "/spe/v1/ui/"):
        resp = requests.get(production.url + path, timeout=30)
        assert resp.status_code == 404, (path, resp.status_code)
        assert_protected(resp)
    assert_protected(requests.get(production.url + "/healthz", timeout=30))
