"""Tests of the command line `python client.py …` against `python server.py` on free ports, with short delays.

Most tests call `client.main([...])` in-process and read stdout/stderr with `capsys`; a few run the script in a
subprocess to prove the entry point, `--help` and the environment variables work. Servers shared by a module
(`fast`, `slow`) only see jobs of users unique to each test; a test that changes the queue or the settings as a
whole starts its own server with `run_server`.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

import client
from simulator.testing.misbehaving import MisbehavingServer
from tests.conftest import ADMIN_TOKEN, ROOT, RunningServer

#: Jobs that finish in 0.2 s (premium too), never fail, and never wait for a slot.
QUICK = {"TRANSLATION_DELAY": 0.2, "PREMIUM_DELAY_FACTOR": 1.0, "ERROR_RATE": 0.0, "WORKERS": 50, "RATE_LIMIT": 1000}
#: Jobs that run for 30 s once started: long enough to time out on or to cancel.
SLOW = {**QUICK, "TRANSLATION_DELAY": 30.0}
#: Nothing starts until `process` says so.
MANUAL = {**QUICK, "PROCESSING_MODE": "manual"}

BAR = re.compile(r"^\[[#.]{20}\] +\d{1,3}% [a-z_]+ \(.+, attempt \d+\)$")


@dataclass
class Result:
    """What one run of the command line gave: exit code, stdout, stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Parse stdout as JSON."""
        return json.loads(self.out)


Cli = Callable[..., Result]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the caller's TRANSLATION_URL / ADMIN_TOKEN / TRANSLATION_USER_ID out of the in-process runs."""
    for name in ("TRANSLATION_URL", "ADMIN_TOKEN", "TRANSLATION_USER_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `client.main(argv)` in-process and return its Result."""

    def run(*argv: object) -> Result:
        code = client.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def fast() -> Iterator[RunningServer]:
    """One QUICK server shared by the module's read-mostly tests."""
    server = RunningServer(QUICK).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow() -> Iterator[RunningServer]:
    """One SLOW server shared by the module's timeout and cancellation tests."""
    server = RunningServer(SLOW).start()
    yield server
    server.stop()


def on(server: RunningServer, user: str | None = None, token: str | None = ADMIN_TOKEN) -> list[str]:
    """Return the global options that point the command line at `server` as `user` with `token`."""
    options = ["--url", server.url]
    if user is not None:
        options += ["--user", user]
    if token is not None:
        options += ["--token", token]
    return options


def unique(name: str) -> str:
    """Return a user id no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


def submit(server: RunningServer, user: str, role: str = "free") -> str:
    """Submit a job over HTTP (not through the CLI) and return its id."""
    response = requests.post(server.url + "/translate", json={"role": role}, headers={"X-User-Id": user}, timeout=5)
    assert response.status_code == 202
    return response.json()["job_id"]


def get(server: RunningServer, path: str) -> Any:
    """GET `path` from `server` and return the JSON answer."""
    response = requests.get(server.url + path, timeout=5)
    assert response.ok
    return response.json()


def progress_lines(err: str) -> list[str]:
    """Return the progress bar lines in a stderr text."""
    return [line for line in err.splitlines() if line.startswith("[")]


# ------------------------------------------------------------------------------------ the script itself


def script(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python client.py argv` in a subprocess with only `env` added to a clean environment."""
    base = {k: v for k, v in os.environ.items() if k not in ("TRANSLATION_URL", "ADMIN_TOKEN", "TRANSLATION_USER_ID")}
    return subprocess.run(
        [sys.executable, "client.py", *argv],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_script_help_lists_the_commands_and_exits_0() -> None:
    """`python client.py --help` exits 0 and names every command and the exit codes."""
    done = script("--help")
    assert done.returncode == 0
    for command in ("submit", "status", "wait", "cancel", "jobs", "queue", "process", "cleanup", "config"):
        assert command in done.stdout
    assert "Exit codes" in done.stdout


def test_script_submit_wait_takes_url_and_user_from_environment(fast: RunningServer) -> None:
    """`python client.py submit --wait` with TRANSLATION_URL and TRANSLATION_USER_ID set completes with exit 0."""
    user = unique("env")
    done = script("submit", "--wait", "--timeout", "10", env={"TRANSLATION_URL": fast.url, "TRANSLATION_USER_ID": user})
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.split()[0]
    assert "completed" in done.stdout
    assert progress_lines(done.stderr)[-1].startswith("[####################] 100% completed")
    job = get(fast, f"/status/{job_id}")
    assert job["user_id"] == user
    assert job["status"] == "completed"


def test_script_takes_admin_token_from_environment(slow: RunningServer) -> None:
    """`python client.py cancel` with ADMIN_TOKEN in the environment cancels; with a wrong one it exits 4."""
    job_id = submit(slow, unique("envtoken"))
    env = {"TRANSLATION_URL": slow.url}
    refused = script("cancel", job_id, env={**env, "ADMIN_TOKEN": "not-the-token"})
    assert refused.returncode == client.EXIT_API_ERROR
    assert "401" in refused.stderr
    done = script("cancel", job_id, "--reason", "from env", env={**env, "ADMIN_TOKEN": ADMIN_TOKEN})
    assert done.returncode == 0, done.stderr
    assert f"Job {job_id} cancelled successfully" in done.stdout
    assert get(slow, f"/status/{job_id}")["cancel_reason"] == "from env"


# ---------------------------------------------------------------------------------- submit, wait, status


def test_submit_prints_the_new_job_id(cli: Cli, fast: RunningServer) -> None:
    """`submit` without --wait prints just the id of a job the server knows, and exits 0."""
    user = unique("submit")
    result = cli(*on(fast, user), "submit", "--role", "premium")
    assert result.code == 0
    job_id = result.out.strip()
    assert uuid.UUID(job_id).version == 4
    job = get(fast, f"/status/{job_id}")
    assert (job["user_id"], job["role"]) == (user, "premium")


def test_submit_wait_completed_exits_0_and_describes_the_job(cli: Cli, fast: RunningServer) -> None:
    """`submit --wait` on a job that completes exits 0 and prints its id, status and role."""
    result = cli(*on(fast, unique("sw")), "submit", "--wait", "--timeout", "10")
    assert result.code == client.EXIT_OK
    job_id, status, role = result.out.split()[:3]
    assert (status, role) == ("completed", "free")
    assert "progress 100%" in result.out
    assert get(fast, f"/status/{job_id}")["status"] == "completed"


def test_wait_on_completed_jobs_exits_0_with_a_line_per_job(cli: Cli, fast: RunningServer) -> None:
    """`wait` on two jobs prints one line per job, each completed, and exits 0."""
    user = unique("wait")
    ids = [submit(fast, user), submit(fast, user, "premium")]
    result = cli(*on(fast, user), "wait", *ids, "--timeout", "10")
    assert result.code == client.EXIT_OK
    lines = result.out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(ids)
    assert all(line.split()[1] == "completed" for line in lines)


def test_permanently_failed_job_exits_1(cli: Cli, run_server) -> None:
    """`submit --wait` on a job whose only attempt fails exits 1 and shows permanently_failed with its error."""
    server = run_server({**QUICK, "ERROR_RATE": 1.0, "MAX_RETRIES": 0})
    result = cli(*on(server, "pf"), "submit", "--wait", "--timeout", "10")
    assert result.code == client.EXIT_JOB_FAILED
    assert result.out.split()[1] == "permanently_failed"
    assert re.search(r"error (timeout|internal_error|unknown)", result.out)
    waited = cli(*on(server), "wait", result.out.split()[0], "--timeout", "5")
    assert waited.code == client.EXIT_JOB_FAILED


def test_cancel_then_wait_exits_1_with_the_reason(cli: Cli, slow: RunningServer) -> None:
    """`cancel` of a running job exits 0; `wait` on it then exits 1 and shows cancelled and the reason."""
    job_id = submit(slow, unique("cancel"))
    cancelled = cli(*on(slow), "cancel", job_id, "--reason", "not needed")
    assert cancelled.code == 0
    assert cancelled.out.strip() == f"Job {job_id} cancelled successfully"
    waited = cli(*on(slow), "wait", job_id, "--timeout", "5")
    assert waited.code == client.EXIT_JOB_FAILED
    assert waited.out.split()[:2] == [job_id, "cancelled"]
    assert "reason: not needed" in waited.out


def test_cancelling_a_completed_job_exits_4(cli: Cli, fast: RunningServer) -> None:
    """`cancel` of a completed job is refused by the server (409) and exits 4."""
    job_id = cli(*on(fast, unique("late")), "submit", "--wait", "--timeout", "10").out.split()[0]
    result = cli(*on(fast), "cancel", job_id)
    assert result.code == client.EXIT_API_ERROR
    assert "409" in result.err
    assert get(fast, f"/status/{job_id}")["status"] == "completed"


def test_wait_timeout_on_a_long_job_exits_3_quickly(cli: Cli, slow: RunningServer) -> None:
    """`wait --timeout 0.3` on a 30 s job gives up after about 0.3 s with exit 3 and says so on stderr."""
    job_id = submit(slow, unique("timeout"))
    started = time.monotonic()
    result = cli(*on(slow), "wait", job_id, "--timeout", "0.3")
    elapsed = time.monotonic() - started
    assert result.code == client.EXIT_TIMEOUT
    assert 0.25 <= elapsed < 2
    assert "timeout:" in result.err
    assert job_id in result.err
    assert result.out == ""


def test_submit_wait_timeout_exits_3(cli: Cli, slow: RunningServer) -> None:
    """`submit --wait --timeout 0.3` of a 30 s job exits 3 and leaves the job running."""
    user = unique("swt")
    result = cli(*on(slow, user), "submit", "--wait", "--timeout", "0.3")
    assert result.code == client.EXIT_TIMEOUT
    assert get(slow, "/jobs?user_id=" + user)["pending"]["free"]


def test_status_with_id_shows_id_status_and_queue_position(cli: Cli, run_server) -> None:
    """`status ID` prints the job's id, status, role and queue position."""
    server = run_server(MANUAL)
    first, second = submit(server, "s"), submit(server, "s")
    result = cli(*on(server), "status", second)
    assert result.code == 0
    assert result.out.split()[:3] == [second, "pending", "free"]
    assert "queue position 2" in result.out
    assert first not in result.out


def test_status_without_id_shows_the_newest_job_of_the_user(cli: Cli, fast: RunningServer) -> None:
    """`status` without an id shows the newest job of `--user`, not an older one nor another user's."""
    user, other = unique("newest"), unique("other")
    submit(fast, user)
    newest = submit(fast, user, "premium")
    submit(fast, other)
    result = cli(*on(fast, user), "status")
    assert result.code == 0
    assert result.out.split()[0] == newest
    assert cli(*on(fast, user), "--json", "status").json()["job_id"] == newest


def test_status_without_id_for_a_user_without_jobs_exits_4(cli: Cli, fast: RunningServer) -> None:
    """`status` without an id for a user who never submitted exits 4 (404)."""
    result = cli(*on(fast, unique("nobody")), "status")
    assert result.code == client.EXIT_API_ERROR
    assert "404" in result.err


# ------------------------------------------------------------------------------------------ --json


def test_json_submit_prints_the_job(cli: Cli, fast: RunningServer) -> None:
    """`--json submit` prints the new job as JSON, echoing role, user, video URL and language."""
    user = unique("js")
    result = cli(*on(fast, user), "--json", "submit", "--role", "premium",
                 "--video-url", "https://example.com/v.mp4", "--lang", "de")
    assert result.code == 0
    job = result.json()
    assert job["status"] == "pending"
    assert job["done"] is False
    assert (job["role"], job["priority"], job["user_id"]) == ("premium", 1, user)
    assert (job["video_url"], job["target_language"]) == ("https://example.com/v.mp4", "de")
    assert get(fast, f"/status/{job['job_id']}")["job_id"] == job["job_id"]


def test_json_submit_wait_prints_the_final_job_and_no_progress(cli: Cli, fast: RunningServer) -> None:
    """`--json submit --wait` prints the completed job as JSON and writes no progress bar to stderr."""
    result = cli(*on(fast, unique("jsw")), "--json", "submit", "--wait", "--timeout", "10")
    assert result.code == 0
    job = result.json()
    assert (job["status"], job["result"], job["done"], job["progress"]) == ("completed", "completed", True, 100)
    assert job["finished_at"]
    assert result.err == ""


def test_json_wait_maps_ids_to_final_jobs(cli: Cli, fast: RunningServer) -> None:
    """`--json wait` prints {job_id: job} with every job's final status."""
    user = unique("jw")
    ids = [submit(fast, user), submit(fast, user)]
    result = cli(*on(fast), "--json", "wait", *ids, "--timeout", "10")
    assert result.code == 0
    finals = result.json()
    assert set(finals) == set(ids)
    assert all(finals[i]["job_id"] == i and finals[i]["status"] == "completed" for i in ids)
    assert result.err == ""


def test_progress_bar_lines_go_to_stderr_while_waiting(cli: Cli, fast: RunningServer) -> None:
    """`submit --wait` writes progress bar lines to stderr, the last one at 100% completed, none to stdout."""
    result = cli(*on(fast, unique("bar")), "submit", "--wait", "--timeout", "10")
    assert result.code == 0
    lines = result.err.splitlines()
    assert lines
    assert all(BAR.match(line) for line in lines), lines
    assert lines[-1].startswith("[####################] 100% completed (finished, attempt 1)")
    assert "[" not in result.out


class FakeTerminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_terminal_progress_line_is_ended_before_a_timeout_message(
    monkeypatch: pytest.MonkeyPatch, slow: RunningServer
) -> None:
    """On a terminal the bar redraws one line with \\r, and a timeout message starts on a line of its own."""
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    job_id = submit(slow, unique("tty"))
    code = client.main([*on(slow), "wait", job_id, "--timeout", "0.3"])
    text = terminal.getvalue()
    assert code == client.EXIT_TIMEOUT
    assert text.startswith("\r[")
    assert "\ntimeout: " in text


# ----------------------------------------------------------------------------------------- jobs, queue


def test_jobs_user_id_lists_only_that_users_jobs(cli: Cli, fast: RunningServer) -> None:
    """`jobs --user-id U` counts U's jobs by status and role and leaves out other users' jobs."""
    user, other = unique("mine"), unique("theirs")
    ids = [cli(*on(fast, user), "submit", "--wait", "--timeout", "10").out.split()[0] for _ in range(2)]
    stranger = submit(fast, other)
    text = cli(*on(fast), "jobs", "--user-id", user)
    assert text.code == 0
    assert text.out.split() == ["completed", "free", "2"]
    grouped = cli(*on(fast), "--json", "jobs", "--user-id", user).json()
    assert set(grouped) == {"pending", "failed", "completed", "permanently_failed", "cancelled"}
    assert set(grouped["completed"]["free"]) == set(ids)
    assert stranger not in json.dumps(grouped)


def test_queue_in_manual_mode_lists_queued_jobs_premium_first(cli: Cli, run_server) -> None:
    """`queue` in manual mode lists every queued job in start order: premium first, then first in, first out."""
    server = run_server(MANUAL)
    free_a, free_b, premium = submit(server, "q"), submit(server, "q"), submit(server, "q", "premium")
    result = cli(*on(server), "queue")
    assert result.code == 0
    header, *rows = result.out.splitlines()
    assert header.startswith("mode manual")
    assert "queued 3" in header
    assert [row.split()[:3] for row in rows] == [
        ["1.", premium, "premium"],
        ["2.", free_a, "free"],
        ["3.", free_b, "free"],
    ]
    queue = cli(*on(server), "--json", "queue").json()
    assert [j["job_id"] for j in queue["queued"]] == [premium, free_a, free_b]
    assert queue["running"] == []


def test_process_count_2_starts_the_next_two(cli: Cli, run_server) -> None:
    """`process --count 2` starts the next two queued jobs (premium first) and leaves the third queued."""
    server = run_server({**MANUAL, "TRANSLATION_DELAY": 30.0})
    free_a, free_b, premium = submit(server, "p"), submit(server, "p"), submit(server, "p", "premium")
    result = cli(*on(server), "process", "--count", "2")
    assert result.code == 0
    assert result.out.splitlines() == [f"started {premium} (premium)", f"started {free_a} (free)"]
    queue = get(server, "/queue")
    assert sorted(j["job_id"] for j in queue["running"]) == sorted([premium, free_a])
    assert [j["job_id"] for j in queue["queued"]] == [free_b]


def test_process_with_nothing_queued_says_so(cli: Cli, run_server) -> None:
    """`process` with an empty queue exits 0 and says nothing was started."""
    server = run_server(MANUAL)
    result = cli(*on(server), "process", "--count", "3")
    assert result.code == 0
    assert result.out.strip() == "nothing to start"


def test_cleanup_completed_reports_the_count_removed(cli: Cli, run_server) -> None:
    """`cleanup --status completed` removes the completed jobs only and reports how many."""
    server = run_server(MANUAL)
    done = [submit(server, "c"), submit(server, "c")]
    queued = submit(server, "c")
    assert cli(*on(server), "process", "--count", "2").code == 0
    assert cli(*on(server), "wait", *done, "--timeout", "10").code == 0
    result = cli(*on(server), "cleanup", "--status", "completed")
    assert result.code == 0
    assert result.out.strip() == "removed 2 job(s)"
    for job_id in done:
        assert requests.get(f"{server.url}/status/{job_id}", timeout=5).status_code == 404
    assert get(server, f"/status/{queued}")["status"] == "pending"
    assert cli(*on(server), "--json", "cleanup", "--status", "completed").json() == {"removed": 0}


# ----------------------------------------------------------------------------------------------- config


def test_config_shows_settings_without_the_admin_token(cli: Cli, fast: RunningServer) -> None:
    """`config` lists the settings as KEY = VALUE, and neither it nor --json shows ADMIN_TOKEN."""
    result = cli(*on(fast), "config")
    assert result.code == 0
    assert "TRANSLATION_DELAY = 0.2" in result.out.splitlines()
    assert "WORKERS = 50" in result.out.splitlines()
    settings = cli(*on(fast), "--json", "config").json()
    assert settings["PROCESSING_MODE"] == "auto"
    assert "ADMIN_TOKEN" not in settings
    for output in (result.out, json.dumps(settings)):
        assert "ADMIN_TOKEN" not in output
        assert ADMIN_TOKEN not in output


def test_config_pairs_change_the_settings(cli: Cli, run_server) -> None:
    """`config WORKERS=3 PROCESSING_MODE=manual ERROR_RATE=0.5` changes them, with JSON types kept."""
    server = run_server(QUICK)
    result = cli(*on(server), "config", "WORKERS=3", "PROCESSING_MODE=manual", "ERROR_RATE=0.5")
    assert result.code == 0
    assert {"WORKERS = 3", "PROCESSING_MODE = manual", "ERROR_RATE = 0.5"} <= set(result.out.splitlines())
    settings = get(server, "/config")
    assert (settings["WORKERS"], settings["PROCESSING_MODE"], settings["ERROR_RATE"]) == (3, "manual", 0.5)


def test_config_refused_by_the_server_exits_4_and_changes_nothing(cli: Cli, fast: RunningServer) -> None:
    """`config` with an out-of-range value exits 4 with the server's message and applies no other pair."""
    result = cli(*on(fast), "config", "RATE_LIMIT=7", "WORKERS=0")
    assert result.code == client.EXIT_API_ERROR
    assert "WORKERS" in result.err
    assert get(fast, "/config")["RATE_LIMIT"] == QUICK["RATE_LIMIT"]


@pytest.mark.parametrize(
    "pairs",
    [["BADPAIR"], ["=3"], ["WORKERS=3", "oops"], ["TRANSLATION_DELAY=NaN"], ["ERROR_RATE=Infinity"],
     ["TRANSLATION_DELAY=1e999"]],
)
def test_config_bad_pair_is_a_usage_error(cli: Cli, fast: RunningServer, pairs: list[str]) -> None:
    """`config` with a pair lacking '=' or a name, or with a non-finite number, exits 2 and sends nothing."""
    before = get(fast, "/config")
    result = cli(*on(fast), "config", *pairs)
    assert result.code == client.EXIT_USAGE
    assert result.err.startswith("error: ")
    assert result.out == ""
    assert get(fast, "/config") == before


# ------------------------------------------------------------------------------------- errors, exit codes


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["submit", "--role", "vip"], ["wait"], ["wait", "x", "--timeout", "soon"],
     ["process", "--count", "two"], ["cleanup", "--status", "pending"], ["status", "a", "b"]],
    ids=["no-command", "unknown-command", "bad-role", "wait-without-id", "bad-timeout", "bad-count",
         "bad-status", "two-ids"],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], closed_port: int) -> None:
    """Bad arguments stop the command line with exit 2 and a usage message on stderr."""
    with pytest.raises(SystemExit) as stopped:
        client.main(["--url", f"http://127.0.0.1:{closed_port}", *argv])
    assert stopped.value.code == client.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_a_url_without_a_scheme_is_a_usage_error(cli: Cli) -> None:
    """`--url localhost:4777` (no http://) exits 2 at once with a message showing the expected form."""
    result = cli("--url", "localhost:4777", "status", str(uuid.uuid4()))
    assert result.code == client.EXIT_USAGE
    assert result.err.startswith("error: the server URL must look like http://")


@pytest.mark.parametrize("command", ["status", "wait", "cancel"])
def test_unknown_job_id_exits_4(cli: Cli, fast: RunningServer, command: str) -> None:
    """`status`, `wait` and `cancel` of a job id the server does not know exit 4 with the 404 on stderr."""
    job_id = str(uuid.uuid4())
    extra = ["--timeout", "5"] if command == "wait" else []
    result = cli(*on(fast), command, job_id, *extra)
    assert result.code == client.EXIT_API_ERROR
    assert "404" in result.err
    assert job_id in result.err


@pytest.mark.parametrize("token", ["not-the-token", None], ids=["wrong-token", "no-token"])
@pytest.mark.parametrize(
    "argv",
    [["cancel", "00000000-0000-4000-8000-000000000000"], ["process"], ["cleanup"], ["config", "WORKERS=7"]],
    ids=["cancel", "process", "cleanup", "config"],
)
def test_admin_commands_without_the_right_token_exit_4(
    cli: Cli, fast: RunningServer, argv: list[str], token: str | None
) -> None:
    """Admin commands with a wrong or no token are refused with 401, exit 4, and change nothing."""
    result = cli(*on(fast, token=token), *argv)
    assert result.code == client.EXIT_API_ERROR
    assert "401" in result.err
    assert get(fast, "/config")["WORKERS"] == QUICK["WORKERS"]


@pytest.mark.parametrize(
    "argv",
    [["status", "00000000-0000-4000-8000-000000000000"], ["status"], ["jobs"], ["queue"], ["config"],
     ["config", "WORKERS=3"], ["cleanup"]],
)
def test_unreachable_server_exits_5(cli: Cli, argv: list[str], closed_port: int) -> None:
    """Any command against a port where nothing listens exits 5 with the connection error on stderr."""
    result = cli("--url", f"http://127.0.0.1:{closed_port}", "--token", ADMIN_TOKEN, *argv)
    assert result.code == client.EXIT_UNREACHABLE
    assert result.err.startswith("error: ")
    assert "ConnectionError" in result.err
    assert result.out == ""


def test_a_server_that_is_not_the_api_exits_5(capsys) -> None:
    """An HTML answer where JSON was expected is reported as a failing server (exit 5), without a traceback."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Html(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>hello</html>")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        code = client.main(["--url", f"http://127.0.0.1:{httpd.server_address[1]}", "queue"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == client.EXIT_UNREACHABLE
    assert "not JSON" in capsys.readouterr().err


def test_ctrl_c_during_a_wait_exits_130_without_a_traceback(monkeypatch, capsys) -> None:
    """Interrupting a wait prints one line and exits 130, as shells expect."""

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(client.TranslationClient, "wait_for_all", interrupted)
    assert client.main(["wait", "some-id"]) == client.EXIT_INTERRUPTED
    assert capsys.readouterr().err.strip() == "interrupted"


def test_wait_against_a_dead_port_with_a_timeout_exits_5_on_time(cli: Cli, closed_port: int) -> None:
    """`wait --timeout 1` where nothing listens exits 5 (the server, not the job, is why) within 1.5 s."""
    started = time.monotonic()
    result = cli("--url", f"http://127.0.0.1:{closed_port}", "wait", str(uuid.uuid4()), "--timeout", "1")
    assert result.code == client.EXIT_UNREACHABLE
    assert time.monotonic() - started < 1.5
    assert result.err.startswith("error: ") and "no answer from the server" in result.err
    assert len(result.err.splitlines()) == 1 and result.err.rstrip().endswith("ConnectionError: Connection refused")


def test_wait_against_a_foreign_server_exits_5_with_one_line(cli: Cli) -> None:
    """`wait` (no timeout) against an HTML server exits 5 at once with one line naming the URL and what came back."""
    with MisbehavingServer("html") as server:
        result = cli("--url", server.url, "wait", str(uuid.uuid4()))
        hits = server.hits
    assert result.code == client.EXIT_UNREACHABLE
    assert hits == 1
    lines = result.err.splitlines()
    assert len(lines) == 1
    assert server.url in lines[0] and "200 text/html" in lines[0] and "is not the translation API" in lines[0]


def test_wait_for_several_jobs_labels_each_job_on_its_own_lines(cli: Cli, fast: RunningServer) -> None:
    """`wait A B` off a terminal prints progress lines labelled with each job's id prefix, ending completed."""
    user = unique("labels")
    ids = [submit(fast, user), submit(fast, user)]
    result = cli(*on(fast), "wait", *ids, "--timeout", "10")
    assert result.code == client.EXIT_OK
    lines = result.err.splitlines()
    for job_id in ids:
        own = [line for line in lines if line.startswith(job_id[:8] + "  [")]
        assert own and own[-1].endswith("(finished, attempt 1)") and "100% completed" in own[-1]
    assert len(lines) == sum(line.startswith((ids[0][:8], ids[1][:8])) for line in lines)
