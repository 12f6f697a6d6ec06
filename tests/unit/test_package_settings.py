"""What an installed package needs from its settings and metadata: the catalog location is
a setting (the checkout's demo catalog only for the embedded default), and the version
comes from the package metadata (``spe --version``, WES service-info)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

import spe
import spe.config
from spe.app import OPENAPI
from spe.cli.main import main
from spe.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _production(tmp_path: Path, **kw: object) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text("projects: []\n")
    return Settings(home=tmp_path, auth_mode="oidc", oidc_issuer="https://login.example.org/",
                    policy_file=policy, **kw)  # type: ignore[arg-type]


def test_the_embedded_default_in_a_checkout_uses_the_demo_catalog(tmp_path: Path) -> None:
    assert Settings(home=tmp_path).catalog_root() == ROOT / "workflows"


def test_production_without_a_catalog_setting_stops_with_what_to_set(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    with pytest.raises(ValueError, match=r"SPE_CATALOG_DIR.*auth_mode=oidc"):
        settings.catalog_root()


def test_production_uses_the_catalog_it_is_given(tmp_path: Path) -> None:
    assert _production(tmp_path, catalog_dir=tmp_path / "cat").catalog_root() == tmp_path / "cat"


def test_an_installed_package_has_no_demo_catalog_to_fall_back_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spe.config, "_REPO_CATALOG", tmp_path / "site-packages" / "workflows")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "workflows").mkdir()  # the working directory is never a default
    with pytest.raises(ValueError, match=r"SPE_CATALOG_DIR.*source checkout"):
        Settings(home=tmp_path).catalog_root()


def test_catalog_verify_without_a_catalog_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("projects: []\n")
    for key, value in {"SPE_HOME": str(tmp_path), "SPE_AUTH_MODE": "oidc",
                       "SPE_OIDC_ISSUER": "https://login.example.org/",
                       "SPE_POLICY_FILE": str(policy)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SPE_CATALOG_DIR", raising=False)
    result = CliRunner().invoke(main, ["catalog", "verify"])
    assert result.exit_code == 1
    assert "no workflow catalog: set SPE_CATALOG_DIR" in result.output
    assert "Traceback" not in result.output


def test_the_version_is_the_package_metadata_version() -> None:
    assert spe.__version__ == version("spe")
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"spe {version('spe')}"


def test_the_openapi_documents_live_inside_the_package() -> None:
    assert OPENAPI.parent == Path(spe.__file__).resolve().parent
    assert {"wes.yaml", "spe.yaml"} <= {p.name for p in OPENAPI.glob("*.yaml")}


def test_the_license_file_matches_the_declared_license() -> None:
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
