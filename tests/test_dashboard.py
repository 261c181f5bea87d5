"""GET /dashboard without a browser: one page and its two files, all from this server, small, locked down by CSP."""

from __future__ import annotations

import re

import pytest

from simulator.http.views.dashboard import DASHBOARD_ASSETS, DASHBOARD_DIR
from simulator.settings import RUNTIME_KEYS
from tests.conftest import ROOT

MAX_BYTES = 60_000  # the page, its script and its stylesheet together


def test_the_dashboard_page_loads_only_this_servers_files(client) -> None:
    """/dashboard is HTML whose script and stylesheet are served by this server; no CDN, no absolute URL."""
    response = client.get("/dashboard")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert not re.search(r"https?:|//[a-z]", page, re.IGNORECASE)
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert set(links) == {"/dashboard/dashboard.js", "/dashboard/dashboard.css", "data:,"}
    total = len(response.get_data())
    for asset, mimetype in DASHBOARD_ASSETS.items():
        served = client.get(f"/dashboard/{asset}")
        assert served.status_code == 200 and served.mimetype == mimetype
        assert served.get_data() == (DASHBOARD_DIR / asset).read_bytes()
        total += len(served.get_data())
    assert total <= MAX_BYTES


def test_the_page_may_load_and_reach_nothing_but_this_server(client) -> None:
    """The Content-Security-Policy allows scripts, styles and requests to 'self' only, and no inline script."""
    policy = client.get("/dashboard").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == directives["style-src"] == directives["connect-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_script_never_puts_the_token_in_a_url_or_local_storage() -> None:
    """The admin token goes to sessionStorage and an Authorization header only: no localStorage, no token in a URL."""
    script = (DASHBOARD_DIR / "dashboard.js").read_text(encoding="utf-8")
    assert "localStorage" not in script
    assert "sessionStorage.setItem(TOKEN_KEY" in script and "Authorization: `Bearer ${token()}`" in script
    assert not re.search(r"\?[^`\"']*token", script, re.IGNORECASE)
    assert "innerHTML" not in script  # user ids and reasons are shown as text, never parsed


def test_the_page_knows_which_settings_can_change(client) -> None:
    """The page is told the runtime settings (the ones it offers inputs for) by the server."""
    page = client.get("/dashboard").get_data(as_text=True)
    (keys,) = re.findall(r'data-runtime-keys="([^"]*)"', page)
    assert keys.split(",") == list(RUNTIME_KEYS)


@pytest.mark.parametrize("asset", ["index.html", "../dashboard.py", "nope.js"])
def test_other_files_are_not_served(client, asset: str) -> None:
    """Only the page's own script and stylesheet are served under /dashboard/."""
    response = client.get(f"/dashboard/{asset}")
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skipped"), ("true", "errors")])
def test_browser_tests_skip_without_a_browser_but_fail_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci, outcome
) -> None:
    """Without chromium and chromedriver on PATH the browser tests skip, saying what to install; with CI=true, fail."""
    monkeypatch.setenv("PATH", str(pytester.mkdir("empty-bin")))
    if ci:
        monkeypatch.setenv("CI", ci)
    else:
        monkeypatch.delenv("CI", raising=False)
    module = ROOT / "tests" / "test_dashboard_browser.py"
    result = pytester.runpytest_subprocess(str(module), "-k", "appears_in_its_lane", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(**{outcome: 1})
    if ci:
        result.stdout.fnmatch_lines(["*the browser tests must run in CI*"])
    else:
        result.stdout.fnmatch_lines(["*apt-get install chromium chromium-driver*"])
