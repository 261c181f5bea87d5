"""Tests of the pytest plugin for client developers: the `translation_server` fixture, its marker and parameters."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlparse

import pytest

from simulator.testing.pytest_plugin import TranslationServer
from tests.conftest import PLUGIN, PLUGIN_INSTALLED, ROOT

FAST = {"TRANSLATION_DELAY": 0.2, "PREMIUM_DELAY_FACTOR": 1.0, "ERROR_RATE": 0.0, "DELAY_JITTER": 0.0}


@pytest.mark.translation_server(settings=FAST)
def test_the_fixture_serves_a_real_server_with_the_markers_settings(translation_server: TranslationServer) -> None:
    """The marker's settings reach the server; the admin client works; a user client translates a job."""
    assert translation_server.admin.get_config()["TRANSLATION_DELAY"] == 0.2
    job = translation_server.client(user_id="dev").translate("free", timeout=10)
    assert (job.status, job.user_id) == ("completed", "dev")
    assert translation_server.admin.jobs(user_id="dev")[0].job_id == job.job_id


@pytest.mark.parametrize("translation_server", [{"PROCESSING_MODE": "manual", "WORKERS": 3}], indirect=True)
def test_the_fixture_takes_settings_by_indirect_parametrization(translation_server: TranslationServer) -> None:
    """Indirect parameters configure the server like the marker: here manual mode, three workers."""
    settings = translation_server.admin.get_config()
    assert (settings["PROCESSING_MODE"], settings["WORKERS"]) == ("manual", 3)
    assert translation_server.url.startswith("http://127.0.0.1:")


def test_a_client_developers_test_file_runs_and_the_server_is_stopped_after(pytester: pytest.Pytester) -> None:
    """The README's example test passes in a project of its own, with --strict-markers, and its server is gone after."""
    pytester.makepyfile(test_example='''
        import pytest

        URLS = []

        @pytest.mark.translation_server(settings={"TRANSLATION_DELAY": 0.2, "ERROR_RATE": 0})
        def test_translation_completes(translation_server):
            URLS.append(translation_server.url)
            tc = translation_server.client(user_id="alice")
            job = tc.translate("premium", video_url="https://example.com/talk.mp4", target_language="de", timeout=10)
            assert job.status == "completed"
            assert translation_server.admin.get_config()["TRANSLATION_DELAY"] == 0.2

        def test_the_server_is_stopped_after_its_test():
            import socket
            from urllib.parse import urlparse
            url = urlparse(URLS[0])
            with socket.socket() as s:
                assert s.connect_ex((url.hostname, url.port)) != 0
    ''')
    # Installed, the package registers the plugin through its entry point; from a checkout, -p does the same.
    load = [] if PLUGIN_INSTALLED else ["-p", PLUGIN]
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *load)
    result.assert_outcomes(passed=2)


def test_the_readmes_example_tests_pass(pytester: pytest.Pytester) -> None:
    """The example test file in the README's plugin section runs as written and passes."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Testing your code against the simulator")[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    pytester.makepyfile(test_readme=example.group(1))
    load = [] if PLUGIN_INSTALLED else ["-p", PLUGIN]
    pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *load).assert_outcomes(passed=2)


def test_a_server_that_cannot_start_is_reported_with_its_log() -> None:
    """Settings the server refuses make start() raise RuntimeError quoting the server's own message."""
    server = TranslationServer({"WORKERS": 0})
    with pytest.raises(RuntimeError) as caught:
        server.start()
    assert "WORKERS" in str(caught.value)
    assert not server.workdir.exists()


def test_start_and_stop_as_a_context_manager_frees_the_port() -> None:
    """Used in a `with`, the server answers inside and its port is closed after, with exit code 0 from SIGTERM."""
    with TranslationServer(FAST) as server:
        assert server.admin.health()["status"] == "ok"
        url = urlparse(server.url)
        process = server.process
    assert process is not None and process.returncode == 0
    with socket.socket() as s:
        assert s.connect_ex((url.hostname, url.port)) != 0


def readme_block(heading: str) -> str:
    """Return the first ```python block after `heading` in README.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme[readme.index(heading):]
    start = after.index("```python\n") + len("```python\n")
    return after[start:after.index("```", start)]


def test_the_readmes_scenario_examples_run_as_they_are(pytester: pytest.Pytester) -> None:
    """The tests of README's "In pytest" (scripted failures, a manual clock, the journal, the hourly limit) pass."""
    pytester.makepyfile(test_scenarios=readme_block("### In pytest"))
    load = [] if PLUGIN_INSTALLED else ["-p", PLUGIN]
    result = pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *load)
    result.assert_outcomes(passed=3)


@pytest.mark.translation_server(settings={"CLOCK": "manual", "TRANSLATION_DELAY": 10, "DELAY_JITTER": 0,
                                          "ERROR_RATE": 0})
def test_the_fixture_moves_the_clock_reads_the_journal_and_resets(translation_server: TranslationServer) -> None:
    """server.advance, clock, requests, count_requests and reset reach the server's controls."""
    tc = translation_server.client(user_id="dev")
    job = tc.submit()
    assert translation_server.clock()["next_event_in_seconds"] == 10
    assert translation_server.advance(10)["changes"] == 1
    assert tc.get_status(job.job_id).status == "completed"
    assert [e["method"] for e in translation_server.requests(user_id="dev")] == ["POST", "GET"]
    assert translation_server.count_requests(path="/status/*") == 1
    assert translation_server.reset() == {"removed": 1, "config_restored": True}
    assert translation_server.requests() == []
