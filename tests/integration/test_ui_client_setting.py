"""The reviewer page signs in with its own public PKCE client when ``SPE_UI_CLIENT_ID``
is set (a browser page cannot keep the service's confidential client secret), and with
the audience otherwise, as before."""

from __future__ import annotations

from pathlib import Path

from spe.app import create_app
from spe.config import Settings
from spe.domain.ports import ExecutorChoice
from tests.fakes import FakeExecutor


def _config(tmp_path: Path, catalog_dir: Path, **settings: str) -> dict[str, str]:
    service = create_app(Settings(home=tmp_path / "home", catalog_dir=catalog_dir,
                                  **settings),  # type: ignore[arg-type]
                         choice=ExecutorChoice(FakeExecutor()))
    with service.app.test_client() as client:
        body: dict[str, str] = client.get("/spe/ui/config.json").json()
    return body


def test_the_page_uses_its_own_public_client_when_one_is_configured(
        tmp_path: Path, catalog_dir: Path) -> None:
    assert _config(tmp_path, catalog_dir, ui_client_id="spe-reviewer-page")["client_id"] \
        == "spe-reviewer-page"


def test_without_one_the_page_uses_the_audience(tmp_path: Path, catalog_dir: Path) -> None:
    assert _config(tmp_path, catalog_dir)["client_id"] == "spe"
