"""The dashboard in a real browser: Debian's headless Chromium, driven by selenium, against `python server.py`.

Nothing is downloaded: selenium is pointed at the installed chromedriver and Chromium (SE_OFFLINE=true
besides). Without them the tests skip and say what to install — except under CI=true, where a skip
would hide that the dashboard went untested, so it fails instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, RunningServer

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - requirements.txt installs it
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("selenium is not installed (pip install -r requirements.txt)", allow_module_level=True)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Flags that let Chromium run headless in a container, offline, without a first-run or update detour.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1000")
SETTINGS = {
    "TRANSLATION_DELAY": 2.0,
    "PREMIUM_DELAY_FACTOR": 1.0,
    "ERROR_RATE": 0.0,
    "DELAY_JITTER": 0.0,
    "PROCESSING_MODE": "manual",
    "RATE_LIMIT": 100_000,
}


def installed_browser() -> tuple[str, str] | None:
    """Return (chromium, chromedriver) found on PATH, or None."""
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Start headless Chromium once for the module (skip, or under CI fail, when it is not installed)."""
    found = installed_browser()
    if found is None:
        reason = "no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser tests must run in CI, but there is {reason}")
        pytest.skip(reason)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must never fetch a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="dashboard-browser-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=found[1]))
    except WebDriverException as e:
        shutil.rmtree(profile, ignore_errors=True)
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Chromium did not start: {e.msg}")
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    """Run one real server for the module: manual processing, 2 s attempts that always succeed."""
    running = RunningServer(SETTINGS).start()
    yield running
    running.stop()


class Api:
    """The server's API, as the tests drive it beside the page."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def submit(self, role: str = "free", user: str = "alice") -> str:
        response = requests.post(f"{self.url}/translate", json={"role": role}, headers={"X-User-Id": user},
                                 timeout=5)
        response.raise_for_status()
        return response.json()["job_id"]

    def process(self, count: int = 1) -> None:
        requests.post(f"{self.url}/process_jobs", json={"count": count}, headers=self.admin,
                      timeout=5).raise_for_status()

    def status(self, job_id: str) -> dict[str, Any]:
        return requests.get(f"{self.url}/status/{job_id}", timeout=5).json()

    def configure(self, **changes: Any) -> None:
        requests.post(f"{self.url}/config", json=changes, headers=self.admin, timeout=5).raise_for_status()


@pytest.fixture
def api(server: RunningServer) -> Iterator[Api]:
    api = Api(server.url)
    yield api
    # Leave nothing queued for the next test, so each page starts from a short queue.
    requests.post(f"{server.url}/process_jobs", json={"count": 1000}, headers=api.admin, timeout=5)


@pytest.fixture
def page(browser: webdriver.Chrome, server: RunningServer) -> Iterator[webdriver.Chrome]:
    """Open the dashboard in a clean tab state, wait until it follows the stream; fail on any console error after."""
    browser.get(f"{server.url}/dashboard")
    browser.execute_script("sessionStorage.clear(); localStorage.clear();")
    browser.refresh()
    browser.get_log("browser")  # forget what came before this test
    wait(browser, 5).until(lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "live")
    yield browser
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors


def wait(driver: webdriver.Chrome, seconds: float) -> WebDriverWait:
    """Wait for a condition, looking every 20 ms."""
    return WebDriverWait(driver, seconds, poll_frequency=0.02)


def row(driver: webdriver.Chrome, where: str, job_id: str) -> list[Any]:
    """Return the row of `job_id` in the list with id `where` (empty if it is not there)."""
    return driver.find_elements(By.CSS_SELECTOR, f'#{where} [data-job-id="{job_id}"]')


def test_a_submitted_job_appears_in_its_lane_within_a_second(page, api: Api) -> None:
    """A job submitted through the API shows in its lane, with its queue position, within 1 s, with no reload."""
    started = time.monotonic()
    premium = api.submit("premium", "bob")
    wait(page, 1.0).until(lambda d: row(d, "lane-premium", premium))
    assert time.monotonic() - started < 1.0
    free = api.submit("free", "carol")
    wait(page, 1.0).until(lambda d: row(d, "lane-free", free))
    (entry,) = row(page, "lane-free", free)
    premium_queued = len(page.find_elements(By.CSS_SELECTOR, "#lane-premium .job"))
    free_queued = len(page.find_elements(By.CSS_SELECTOR, "#lane-free .job"))
    assert entry.find_element(By.CLASS_NAME, "position").text == f"#{premium_queued + free_queued}"
    assert entry.find_element(By.CLASS_NAME, "user").text == "carol"


def test_a_running_jobs_progress_bar_moves_until_its_outcome_shows(page, api: Api) -> None:
    """Processed, the job moves to Running, its bar grows while it translates, and it ends as completed, live."""
    job_id = api.submit("premium", "dora")
    wait(page, 1.0).until(lambda d: row(d, "lane-premium", job_id))
    api.process(1000)
    wait(page, 1.0).until(lambda d: row(d, "running", job_id))
    first = int(row(page, "running", job_id)[0].get_attribute("data-progress"))
    wait(page, 2.0).until(lambda d: row(d, "running", job_id)
                          and int(row(d, "running", job_id)[0].get_attribute("data-progress")) > first)
    (running,) = row(page, "running", job_id)
    assert running.find_element(By.CLASS_NAME, "fill").get_attribute("style").startswith("width:")
    assert running.find_element(By.CLASS_NAME, "eta").text.endswith(" s")  # the ETA, counting down
    wait(page, 4.0).until(lambda d: row(d, "finished", job_id))
    (done,) = row(page, "finished", job_id)
    assert done.get_attribute("data-outcome") == "completed"
    assert done.find_element(By.CLASS_NAME, "attempts").get_attribute("title") == "1 attempt"
    assert not row(page, "running", job_id) and not row(page, "lane-premium", job_id)
    assert " completed (" in page.find_element(By.ID, "throughput-text").text


def test_the_cancel_button_cancels_a_queued_job_once_the_admin_token_is_entered(page, api: Api) -> None:
    """Without the token there is no cancel button; with it, a click cancels the job and the page shows it."""
    job_id = api.submit("free", "erin")
    wait(page, 1.0).until(lambda d: row(d, "lane-free", job_id))
    cancel = row(page, "lane-free", job_id)[0].find_element(By.CLASS_NAME, "cancel")
    assert not cancel.is_displayed()
    assert not page.find_element(By.ID, "process").is_displayed()
    assert not page.find_element(By.ID, "token-forget").is_displayed()
    page.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    page.find_element(By.ID, "token-save").click()
    assert "token" not in page.current_url.lower() and ADMIN_TOKEN not in page.current_url
    assert page.execute_script("return sessionStorage.length") == 1
    assert page.execute_script("return localStorage.length") == 0
    assert page.find_element(By.ID, "process").is_displayed() and not page.find_element(By.ID, "token").is_displayed()
    wait(page, 1.0).until(lambda d: row(d, "lane-free", job_id)[0].find_element(By.CLASS_NAME, "cancel").is_displayed())
    row(page, "lane-free", job_id)[0].find_element(By.CLASS_NAME, "cancel").click()
    wait(page, 2.0).until(lambda d: row(d, "finished", job_id))
    assert row(page, "finished", job_id)[0].get_attribute("data-outcome") == "cancelled"
    assert not row(page, "lane-free", job_id)
    assert api.status(job_id)["status"] == "cancelled"


def test_clicking_a_user_shows_their_history(page, api: Api) -> None:
    """A click on a user's name lists every job of that user, and the list follows new ones live."""
    first = api.submit("free", "frank")
    wait(page, 1.0).until(lambda d: row(d, "lane-free", first))
    row(page, "lane-free", first)[0].find_element(By.CLASS_NAME, "user").click()
    wait(page, 2.0).until(lambda d: row(d, "user-history", first))
    assert page.find_element(By.ID, "user-name").text == "frank"
    second = api.submit("premium", "frank")
    wait(page, 1.0).until(lambda d: row(d, "user-history", second))


def test_the_page_falls_back_to_polling_when_the_stream_is_refused(browser, server, api: Api) -> None:
    """With no event stream allowed the page says it polls, and still shows a new job within the poll interval."""
    api.configure(MAX_EVENT_STREAMS=0)
    try:
        browser.get(f"{server.url}/dashboard")
        wait(browser, 5).until(lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "polling")
        job_id = api.submit("premium", "gina")
        wait(browser, 3.0).until(lambda d: row(d, "lane-premium", job_id))
        config = browser.find_element(By.ID, "config").text
        assert "MAX_EVENT_STREAMS 0" in config and "WORKERS" in config
    finally:
        api.configure(MAX_EVENT_STREAMS=100)
    # The refused stream is the only thing the browser may complain about.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert all("/events" in e["message"] for e in errors), errors
