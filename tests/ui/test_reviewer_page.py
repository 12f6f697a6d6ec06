"""The reviewer page (/spe/ui/) in a real headless Chromium driven by Selenium, against a
real server: sign-in through the development issuer (authorization code + PKCE), check
results, previews, two reviewers' votes, and the release.

Needs Debian's ``chromium`` and ``chromium-driver`` (scripts/install-test-deps.sh) and
PyPI's ``selenium``; skipped without them unless SPE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from tests.helpers import Api, Server

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REVIEWER_GROUPS = "spe:demo,spe:demo:role=reviewer"
CSP = ("default-src 'self'; img-src 'self' blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self' ")
T = TypeVar("T")


def _browser_missing() -> str:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        return f"{' and '.join(missing)} missing (run scripts/install-test-deps.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return ""


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, catalog_dir: Path) -> Iterator[Server]:
    srv = Server(home=tmp_path_factory.mktemp("ui-home"), catalog=catalog_dir).start()
    yield srv
    srv.stop()


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        if os.environ.get("SPE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SPE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--window-size=1400,1800",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


# -- helpers ------------------------------------------------------------------------------

def wait(browser: Any, condition: Callable[[Any], T], what: str, timeout: float = 20) -> T:
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, ignored_exceptions=(
            StaleElementReferenceException,)).until(condition)
    except WebDriverException as exc:
        raise AssertionError(f"timed out waiting for {what}; page text:\n"
                             f"{browser.find_element('tag name', 'body').text}") from exc


def idle(browser: Any) -> bool:
    """No API call of the page under way (and so no re-rendering to come)."""
    return bool(browser.execute_script("return document.body.dataset.pending === '0'"))


def css(browser: Any, selector: str) -> Any:
    return browser.find_element("css selector", selector)


def visible_text(browser: Any, selector: str) -> str:
    found = browser.find_elements("css selector", selector)
    return str(found[0].text) if found and found[0].is_displayed() else ""


def console_problems(browser: Any) -> list[str]:
    """Browser console errors (CSP violations, script errors), except failed API calls
    the page reports itself and the favicon the page does not have."""
    return [entry["message"] for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and "/spe/v1/" not in entry["message"]
            and "/favicon.ico" not in entry["message"]]


def sign_in(browser: Any, server: Server, user: str, groups: str) -> None:
    browser.get(server.url + "/spe/ui/")
    wait(browser, lambda b: css(b, "[data-testid=sign-in]").is_displayed(), "the sign-in button")
    css(browser, "[data-testid=sign-in]").click()
    wait(browser, lambda b: "/authorize?" in b.current_url, "the issuer's form")
    assert "DEVELOPMENT ISSUER" in css(browser, "[data-testid=dev-issuer-banner]").text
    assert css(browser, "#groups").get_attribute("value") == "spe:demo"  # the default
    username = css(browser, "#username")
    username.clear()
    username.send_keys(user)
    field = css(browser, "#groups")
    field.clear()
    field.send_keys(groups)
    css(browser, "#sign-in").click()
    wait(browser, lambda b: visible_text(b, "[data-testid=user]").startswith(user),
         f"{user} signed in")
    assert browser.current_url == server.url + "/spe/ui/"  # the code left the address bar
    token = browser.execute_script("return sessionStorage.getItem('spe.ui.token')")
    assert token and "access_token" in token
    assert browser.execute_script("return localStorage.length") == 0
    assert "code=" not in browser.execute_script("return document.cookie")


def sign_out(browser: Any) -> None:
    css(browser, "[data-testid=sign-out]").click()
    wait(browser, lambda b: css(b, "[data-testid=sign-in]").is_displayed(), "signed out")
    assert browser.execute_script("return sessionStorage.getItem('spe.ui.token')") is None


def open_request(browser: Any, request_id: str) -> None:
    button = f"[data-testid=open-request][data-id='{request_id}']"
    wait(browser, lambda b: b.find_elements("css selector", button), f"request {request_id}")
    css(browser, button).click()
    wait(browser, lambda b: visible_text(b, "[data-testid=request-id]") == request_id
         and idle(b), "the request's details")


def file_card(browser: Any, path: str) -> Any:
    return css(browser, f"article[data-testid=file][data-path='{path}']")


def has_voted(path: str) -> Callable[[Any], bool]:
    def check(browser: Any) -> bool:
        return idle(browser) and bool(file_card(browser, path).find_element(
            "css selector", "[data-testid=voted]").is_displayed())
    return check


def vote_on_every_file(browser: Any, paths: list[str], reviewer: str) -> None:
    from selenium.webdriver.support.ui import Select

    for path in paths:
        card = file_card(browser, path)
        form = card.find_element("css selector", "[data-testid=vote-form]")
        assert form.is_displayed()
        # labelled controls (label for=...)
        select = form.find_element("css selector", "[data-testid=vote-decision]")
        label = form.find_element("css selector", f"label[for='{select.get_attribute('id')}']")
        assert label.text == "Decision"
        Select(select).select_by_value("approve")
        reason = form.find_element("css selector", "[data-testid=vote-reason]")
        reason.send_keys(f"{reviewer}: aggregate output, nothing identifying in {path}")
        form.find_element("css selector", "[data-testid=vote-submit]").click()
        wait(browser, has_voted(path), f"{reviewer}'s vote on {path}")


def votes_shown(browser: Any) -> list[tuple[str, str, str]]:
    rows = browser.find_elements("css selector", "[data-testid=vote]")
    return sorted((r.get_attribute("data-reviewer"), r.get_attribute("data-path"),
                   r.get_attribute("data-decision")) for r in rows)


def create_release_request(server: Server, workflow: str = "sleepy",
                           params: dict[str, Any] | None = None,
                           pick: Callable[[str], bool] = lambda path: True,
                           ) -> tuple[Api, dict[str, Any]]:
    """As alice, a finished run of ``workflow`` and a release request for its outputs."""
    alice = Api(server.url, server.token("alice", groups=("spe:demo",)))
    run_id = alice.run_id(alice.submit(workflow, params))
    assert alice.wait(run_id, timeout=300) == "COMPLETE"
    outputs = alice.get(f"/spe/v1/runs/{run_id}/outputs")
    assert outputs.status_code == 200, outputs.text
    paths = sorted(o["path"] for o in outputs.json()["outputs"] if pick(o["path"]))
    resp = alice.post("/spe/v1/release-requests", json={
        "run_id": run_id, "files": paths,
        "justification": f"Outputs of {workflow}, for the reviewer page test."})
    assert resp.status_code == 201, resp.text
    request = resp.json()
    assert request["state"] == "IN_REVIEW", request
    return alice, request


# -- tests ----------------------------------------------------------------------------------

def test_page_and_assets_have_security_headers(ui_server: Server) -> None:
    root = requests.get(ui_server.url + "/spe/ui", allow_redirects=False, timeout=10)
    assert root.status_code in (301, 302, 307, 308)
    assert root.headers["Location"].endswith("/spe/ui/")
    for name, kind in (("", "text/html"), ("app.js", "text/javascript"),
                       ("style.css", "text/css"), ("config.json", "application/json")):
        resp = requests.get(f"{ui_server.url}/spe/ui/{name}", timeout=10)
        assert resp.status_code == 200, name
        assert resp.headers["Content-Type"].startswith(kind)
        assert resp.headers["Content-Security-Policy"].startswith(CSP)
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Cache-Control"] == "no-store"
    config = requests.get(ui_server.url + "/spe/ui/config.json", timeout=10).json()
    issuer = (ui_server.home / "dev-issuer" / "issuer.json").read_text()
    assert str(config["issuer"]).rsplit(":", 1)[1] in issuer  # the dev issuer's port
    assert config["client_id"] == "spe"
    assert "openid" in config["scope"]
    html = requests.get(ui_server.url + "/spe/ui/", timeout=10).text
    assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE)  # no inline handlers
    assert not re.search(r"<script(?![^>]*\ssrc=)", html)  # no inline scripts
    assert "style=" not in html


@pytest.mark.parametrize("name", ["secret.py", "..%2fui_routes.py", "index.htm",
                                  "../ui_routes.py", "APP.JS", "app.js%00"])
def test_only_the_allowlisted_files(ui_server: Server, name: str) -> None:
    resp = requests.get(f"{ui_server.url}/spe/ui/{name}", timeout=10)
    assert resp.status_code == 404


def test_sign_in_and_out(ui_server: Server, driver: Any) -> None:
    sign_in(driver, ui_server, "rita", REVIEWER_GROUPS)
    assert "reviewer" in css(driver, "[data-testid=user]").text  # from GET /spe/v1/me
    sign_out(driver)
    assert not css(driver, "[data-testid=user]").is_displayed()
    assert console_problems(driver) == []


def test_a_sign_in_answer_with_a_foreign_state_is_refused(ui_server: Server,
                                                          driver: Any) -> None:
    driver.get(ui_server.url + "/spe/ui/?code=stolen&state=forged")
    wait(driver, lambda b: "sign-in failed" in visible_text(b, "[data-testid=error]"),
         "the refusal")
    assert css(driver, "[data-testid=sign-in]").is_displayed()
    assert driver.current_url == ui_server.url + "/spe/ui/"


def test_two_reviewers_release_through_the_page(ui_server: Server, driver: Any,
                                                tmp_path: Path) -> None:
    alice, request = create_release_request(ui_server, "sleepy", {"seconds": 0})
    request_id = request["id"]
    paths = sorted(f["path"] for f in request["files"])
    assert "results/done.txt" in paths

    # rita reviews: check results, the preview, her votes (blind: only hers)
    sign_in(driver, ui_server, "rita", REVIEWER_GROUPS)
    open_request(driver, request_id)
    assert css(driver, "[data-testid=request-state]").text == "IN_REVIEW"
    assert "reviewer page test" in css(driver, "[data-testid=justification]").text
    wait(driver, idle, "the previews")
    driver.save_screenshot(str(tmp_path / "reviewer-page-in-review.png"))
    done = file_card(driver, "results/done.txt")
    findings = done.find_elements("css selector", "[data-testid=finding]")
    assert findings, "no check results shown"
    severities = {f.get_attribute("data-severity") for f in findings}
    assert severities <= {"hard", "soft", "pass"} and "pass" in severities
    assert "sev-pass" in findings[-1].get_attribute("class")
    wait(driver, lambda b: file_card(b, "results/done.txt").find_elements(
        "css selector", "[data-testid=preview-text]"), "the preview of results/done.txt")
    preview = file_card(driver, "results/done.txt").find_element(
        "css selector", "[data-testid=preview-text]")
    assert preview.text.strip() == "done"
    assert preview.tag_name == "pre"
    vote_on_every_file(driver, paths, "rita")
    assert css(driver, "[data-testid=request-state]").text == "IN_REVIEW"
    assert votes_shown(driver) == [("rita", p, "approve") for p in paths]
    sign_out(driver)

    # rex reviews: rita's votes stay hidden until the request is decided
    sign_in(driver, ui_server, "rex", REVIEWER_GROUPS)
    open_request(driver, request_id)
    assert votes_shown(driver) == []
    vote_on_every_file(driver, paths, "rex")

    def released(browser: Any) -> bool:
        if not idle(browser):
            return False
        if css(browser, "[data-testid=request-state]").text == "RELEASED":
            return True
        css(browser, "[data-testid=refresh]").click()  # the release may finish later
        time.sleep(0.3)
        return False

    wait(driver, released, "the request to be RELEASED", timeout=60)
    expected = sorted([("rex", p, "approve") for p in paths]
                      + [("rita", p, "approve") for p in paths])
    wait(driver, lambda b: votes_shown(b) == expected, "everyone's votes")
    row = css(driver, f"[data-testid=request-row][data-id='{request_id}']")
    assert row.get_attribute("data-state") == "RELEASED"
    assert console_problems(driver) == []

    # alice downloads the released file: the same bytes as were snapshotted
    download = alice.get(f"/spe/v1/release-requests/{request_id}/download",
                         params={"path": "results/done.txt"})
    assert download.status_code == 200, download.text
    assert download.content == b"done\n"
    snapshot = next(f for f in request["files"] if f["path"] == "results/done.txt")
    assert hashlib.sha256(download.content).hexdigest() == snapshot["sha256"]

    print(f"screenshot: {full_page_screenshot(driver, tmp_path / 'reviewer-page.png')}")


@pytest.mark.slow
def test_previews_of_a_table_and_a_plot(ui_server: Server, driver: Any,
                                        tmp_path: Path) -> None:
    """text/csv as a table (escaped cells), image/png as an image from a blob URL."""
    _, request = create_release_request(
        ui_server, "tsv-summary@1.0.0", None,
        pick=lambda path: path in ("results/summary.csv", "results/summary.png"))
    assert request["state"] == "IN_REVIEW", request
    sign_in(driver, ui_server, "rita", REVIEWER_GROUPS)
    open_request(driver, request["id"])
    assert css(driver, "[data-testid=ctx-workflow]").text == "tsv-summary@1.0.0"
    assert '"input"' in css(driver, "[data-testid=ctx-params]").text  # what the run read
    table = wait(driver, lambda b: file_card(b, "results/summary.csv").find_element(
        "css selector", "[data-testid=preview-table]"), "the CSV preview")
    header = [th.text for th in table.find_elements("css selector", "thead th")]
    assert header[0] == "site" and "n" in header, header
    assert len(table.find_elements("css selector", "tbody tr")) >= 2
    image = wait(driver, lambda b: file_card(b, "results/summary.png").find_element(
        "css selector", "[data-testid=preview-image]"), "the PNG preview")
    assert str(image.get_attribute("src")).startswith("blob:")
    wait(driver, lambda b: b.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image), "the image")
    assert console_problems(driver) == []  # no CSP violation for the blob image
    full_page_screenshot(driver, tmp_path / "reviewer-page-previews.png")

    # a reason is required; the server's refusal is shown with its ErrorResponse msg
    from selenium.webdriver.support.ui import Select

    form = file_card(driver, "results/summary.csv").find_element(
        "css selector", "[data-testid=vote-form]")
    Select(form.find_element("css selector", "[data-testid=vote-decision]")
           ).select_by_value("approve")
    form.find_element("css selector", "[data-testid=vote-submit]").click()
    error = form.find_element("css selector", "[data-testid=vote-error]")
    wait(driver, lambda b: error.is_displayed(), "the missing reason")
    assert "reason" in error.text.lower()
    rita = Api(ui_server.url, ui_server.token("rita", groups=tuple(REVIEWER_GROUPS.split(","))))
    first = rita.post(f"/spe/v1/release-requests/{request['id']}/votes", json={
        "path": "results/summary.csv", "decision": "approve", "reason": "voted elsewhere"})
    assert first.status_code == 200, first.text
    second = rita.post(f"/spe/v1/release-requests/{request['id']}/votes", json={
        "path": "results/summary.csv", "decision": "reject", "reason": "again"})
    assert second.status_code >= 400
    form.find_element("css selector", "[data-testid=vote-reason]").send_keys("again, here")
    form.find_element("css selector", "[data-testid=vote-submit]").click()
    wait(driver, lambda b: idle(b) and error.text == second.json()["msg"],
         "the server's refusal")


def full_page_screenshot(browser: Any, path: Path) -> Path:
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, max(1200, min(int(height) + 200, 8000)))
    assert browser.save_screenshot(str(path))
    return path


# -- review with context, no preselection, approve all, the requester's view (issue 14) --

def test_the_page_has_a_favicon(ui_server: Server) -> None:
    html = requests.get(ui_server.url + "/spe/ui/", timeout=10).text
    assert '<link rel="icon" href="favicon.svg"' in html
    for path in ("/spe/ui/favicon.svg", "/favicon.ico"):
        resp = requests.get(ui_server.url + path, timeout=10)
        assert resp.status_code == 200, path
        assert resp.headers["Content-Type"] == "image/svg+xml"
        assert resp.content.startswith(b"<svg")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_a_reviewer_sees_the_context_and_approves_all_files_by_keyboard(
        ui_server: Server, driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    _, request = create_release_request(ui_server, "sleepy", {"seconds": 0})
    paths = sorted(f["path"] for f in request["files"])
    assert len(paths) > 1
    sign_in(driver, ui_server, "rita", REVIEWER_GROUPS)
    button = f"[data-testid=open-request][data-id='{request['id']}']"
    wait(driver, lambda b: b.find_elements("css selector", button), "the request")
    css(driver, button).send_keys(Keys.ENTER)  # a real button: Enter opens it
    wait(driver, lambda b: visible_text(b, "[data-testid=request-id]") == request["id"]
         and idle(b), "the request's details")
    assert driver.execute_script("return document.activeElement.id") == "detail-heading"

    # what produced the files
    assert css(driver, "[data-testid=context]").is_displayed()
    assert css(driver, "[data-testid=ctx-workflow]").text == "sleepy@1.0.0"
    assert css(driver, "[data-testid=ctx-digest]").text.startswith("sha256:")
    assert '"seconds": 0' in css(driver, "[data-testid=ctx-params]").text
    assert "No dataset" in css(driver, "[data-testid=ctx-datasets]").text
    card = file_card(driver, "results/done.txt")
    assert "true type (from its bytes): text" in card.text
    assert card.find_element("css selector", "[data-testid=file-size]").text == "5"

    # no decision is preselected; a vote without one is refused on the page
    for path in paths:
        select = file_card(driver, path).find_element("css selector",
                                                      "[data-testid=vote-decision]")
        assert select.get_attribute("value") == ""
    form = file_card(driver, "results/done.txt").find_element(
        "css selector", "[data-testid=vote-form]")
    form.find_element("css selector", "[data-testid=vote-reason]").send_keys("fine")
    form.find_element("css selector", "[data-testid=vote-submit]").click()
    error = form.find_element("css selector", "[data-testid=vote-error]")
    wait(driver, lambda b: error.is_displayed(), "the missing decision")
    assert error.text == "Choose a decision."

    # approve all with one reason, from the keyboard
    reason = css(driver, "[data-testid=approve-all-reason]")
    reason.send_keys("Aggregate outputs of a test workflow; nothing identifying.")
    reason.send_keys(Keys.TAB)
    active = driver.switch_to.active_element
    assert active.get_attribute("data-testid") == "approve-all-submit"
    active.send_keys(Keys.ENTER)
    wait(driver, lambda b: idle(b) and votes_shown(b) == [("rita", p, "approve")
                                                         for p in paths], "rita's votes")
    assert not css(driver, "[data-testid=approve-all-form]").is_displayed()
    assert console_problems(driver) == []
    full_page_screenshot(driver, tmp_path / "reviewer-page-context.png")


def test_a_requester_follows_and_withdraws_a_returned_request(
        ui_server: Server, driver: Any) -> None:
    _, request = create_release_request(ui_server, "sleepy", {"seconds": 0})
    request_id = request["id"]
    for reviewer, decision in (("rita", "approve"), ("rex", "request_changes")):
        api = Api(ui_server.url, ui_server.token(reviewer,
                                                 groups=tuple(REVIEWER_GROUPS.split(","))))
        for f in request["files"]:
            vote = api.post(f"/spe/v1/release-requests/{request_id}/votes", json={
                "path": f["path"], "decision": decision, "reason": f"{reviewer} looked"})
            assert vote.status_code == 200, vote.text

    sign_in(driver, ui_server, "alice", "spe:demo")
    row = f"[data-testid=my-request-row][data-id='{request_id}']"
    wait(driver, lambda b: b.find_elements("css selector", row), "alice's request")
    assert css(driver, row).get_attribute("data-state") == "RETURNED"
    css(driver, f"[data-testid=open-mine][data-id='{request_id}']").click()
    wait(driver, lambda b: visible_text(b, "[data-testid=request-id]") == request_id
         and idle(b), "the request's details")
    assert not css(driver, "[data-testid=context]").is_displayed()  # reviewers only
    findings = driver.find_elements("css selector", "[data-testid=finding]")
    assert findings  # where, never the values
    decided = votes_shown(driver)
    assert ("rex", "results/done.txt", "request_changes") in decided  # decided: shown
    assert "for the reviewers" in file_card(driver, "results/done.txt").find_element(
        "css selector", "[data-testid=preview]").text
    assert css(driver, "[data-testid=owner-actions]").is_displayed()
    css(driver, "[data-testid=withdraw]").click()
    wait(driver, lambda b: idle(b) and css(b, row).get_attribute("data-state") == "WITHDRAWN",
         "the withdrawal")
    assert css(driver, "[data-testid=request-state]").text == "WITHDRAWN"
    assert not css(driver, "[data-testid=owner-actions]").is_displayed()
    assert console_problems(driver) == []


def test_a_requester_resubmits_a_returned_request_from_the_list(
        ui_server: Server, driver: Any) -> None:
    _, request = create_release_request(ui_server, "sleepy", {"seconds": 0})
    request_id = request["id"]
    for reviewer in ("rita", "rex"):
        api = Api(ui_server.url, ui_server.token(reviewer,
                                                 groups=tuple(REVIEWER_GROUPS.split(","))))
        for f in request["files"]:
            assert api.post(f"/spe/v1/release-requests/{request_id}/votes", json={
                "path": f["path"], "decision": "request_changes",
                "reason": "say more"}).status_code == 200
    sign_in(driver, ui_server, "alice", "spe:demo")
    button = f"[data-testid=mine-resubmit][data-id='{request_id}']"
    wait(driver, lambda b: b.find_elements("css selector", button), "the resubmit button")
    css(driver, button).click()
    row = f"[data-testid=my-request-row][data-id='{request_id}']"
    wait(driver, lambda b: idle(b) and css(b, row).get_attribute("data-state")
         in ("SUBMITTED", "CHECKING", "IN_REVIEW"), "the resubmission")
    assert "resubmitted" in visible_text(driver, "[data-testid=status]")
