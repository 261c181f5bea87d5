"""How `python server.py` serves (issue 11), end to end on real sockets: its one line, ports, idle connections,
body limits, repeated headers, held long-polls answered from the event loop as the Flask view would answer them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ADMIN_TOKEN, FAST, ROOT

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def raw(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes on a new connection and return everything the server answers before it closes or pauses."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < content_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def content_length(data: bytes) -> int:
    """Return the Content-Length of a raw answer's head (0 if it has none)."""
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def threads_of(pid: int) -> int:
    """Return how many threads process `pid` runs (Linux: /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


# ------------------------------------------------------------------------------------------ start and stop


def test_port_zero_prints_exactly_one_serving_line_with_the_real_port(run_server) -> None:
    """With PORT=0 the server prints `Serving on http://127.0.0.1:<port>` once, and that port answers."""
    server = run_server({})
    lines = [line for line in server.stdout_lines if "Serving on" in line]
    assert lines == [f"Serving on http://127.0.0.1:{server.port}"] and server.port > 0
    assert requests.get(f"{server.url}/healthz", timeout=5).json()["status"] == "ok"


@pytest.mark.parametrize("holder", ["python server.py", "a plain listening socket"])
def test_a_busy_port_is_one_line_naming_it_and_exit_2(run_server, holder: str) -> None:
    """A port held by another server (ours too: never shared) stops the start-up with one line and exit code 2."""
    if holder == "python server.py":
        port = run_server({}).port
        plain = None
    else:
        plain = socket.socket()
        plain.bind(("127.0.0.1", 0))
        plain.listen()
        port = plain.getsockname()[1]
    try:
        env = {**os.environ, **{k: str(v) for k, v in FAST.items()}, "PORT": str(port)}
        result = subprocess.run([sys.executable, str(ROOT / "server.py")], env=env, capture_output=True, text=True,
                                timeout=30, cwd=ROOT)
    finally:
        if plain is not None:
            plain.close()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"Cannot listen on 127.0.0.1:{port}: it is in use."]
    assert "Serving on" not in result.stdout


def test_a_chosen_port_is_held_until_the_server_listens_and_never_accepts_on_the_placeholder() -> None:
    """hold_port(host, 0) keeps its port from anyone else (another server too), and accepts no connection itself."""
    from simulator.serve import PortBusy, hold_port

    holder = hold_port("127.0.0.1", 0)
    port = holder.getsockname()[1]
    try:
        with socket.socket() as plain, pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
        with pytest.raises(PortBusy, match=f"127.0.0.1:{port}: it is in use"):
            hold_port("127.0.0.1", port)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        holder.close()


@pytest.mark.skipif(not Path("/proc/self/limits").exists(), reason="reads the server's limits through /proc (Linux)")
def test_the_server_raises_its_open_files_limit_to_the_hard_limit(run_server) -> None:
    """The running server's soft RLIMIT_NOFILE equals its hard limit."""
    import resource

    server = run_server({})
    with open(f"/proc/{server.pid}/limits", encoding="ascii") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    expected = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert soft == hard and (hard == "unlimited" or int(hard) == expected)


def test_simulator_wsgi_builds_the_app_and_starts_its_ticker() -> None:
    """`simulator.wsgi:app`, for other WSGI servers, is the app from the environment with the ticker running."""
    code = ("import simulator.wsgi as w; print(type(w.app).__name__, w.ticker._thread.is_alive(), "
            "w.app.extensions['simulator'].engine.settings.WORKERS)")
    env = {**os.environ, "WORKERS": "3", "ADMIN_TOKEN": ADMIN_TOKEN}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                            cwd=ROOT, check=True)
    assert result.stdout.split() == ["Flask", "True", "3"]


def test_fifteen_hundred_idle_connections_do_not_kill_the_server(run_server) -> None:
    """1 500 plain sockets held open (past select()'s 1 024) leave the server up and /healthz quick."""
    server = run_server({})
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(1500)]
    try:
        latencies = []
        with requests.Session() as s:
            for _ in range(20):
                started = time.perf_counter()
                assert s.get(f"{server.url}/healthz", timeout=5).status_code == 200
                latencies.append(time.perf_counter() - started)
        assert sorted(latencies)[len(latencies) // 2] < 0.25  # milliseconds here; generous for loaded CI machines
    finally:
        for sock in held:
            sock.close()
    assert server.stop() == 0


# ---------------------------------------------------------------------------------------------- bodies


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_sent(run_server) -> None:
    """Content-Length: 200 MB gets a 413 problem+json at once, while the client has sent no byte of the body."""
    server = run_server({})
    head = b"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
    answer = raw(server.port, head)
    assert answer.startswith(b"HTTP/1.1 413")
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["code"] == "request_entity_too_large" and "65536" in body["detail"]
    assert b"application/problem+json" in answer.lower()
    assert requests.get(f"{server.url}/jobs?limit=1", timeout=5).headers["X-Total-Count"] == "0"


@pytest.mark.parametrize(("path", "envelope"), [("/v2/video_translate", {"error", "data"}),
                                              ("/v3/video-translations", {"error"})])
def test_a_body_over_the_limit_on_a_heygen_route_is_refused_in_heygens_envelope(run_server, path: str,
                                                                                 envelope: set[str]) -> None:
    """The bridge's own 413 on a HeyGen route is HeyGen's payload_too_large, never problem+json."""
    server = run_server({})
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Api-Key: sk_sim_anything-at-all-0000\r\n"
            "Content-Type: application/json\r\nContent-Length: 200000000\r\n\r\n").encode()
    answer = raw(server.port, head)
    assert answer.startswith(b"HTTP/1.1 413") and b"application/problem+json" not in answer.lower()
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert set(body) == envelope and body["error"]["code"] == "payload_too_large"


def test_a_chunked_body_is_cut_off_at_the_limit(run_server) -> None:
    """A chunked body that grows past 64 KiB is answered 413 problem+json; a short chunked body is read whole."""
    server = run_server({})
    chunk = b"x" * 8192
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10))  # 80 KiB
    head = b"POST /translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = raw(server.port, head + pieces + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b'"request_entity_too_large"' in answer
    body = b'{"role": "premium"}'
    short = raw(server.port, head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert short.startswith(b"HTTP/1.1 202") and b'"premium"' in short


def test_a_repeated_user_header_through_the_server_is_400(run_server) -> None:
    """Two X-User-Id headers on the wire are a 400 problem+json, and no job is made."""
    server = run_server({})
    answer = raw(server.port, b"POST /translate HTTP/1.1\r\nHost: x\r\nX-User-Id: alice\r\nX-User-Id: bob\r\n"
                              b"Content-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b'"invalid_header"' in answer and b"X-User-Id" in answer
    assert requests.get(f"{server.url}/jobs?limit=1", timeout=5).headers["X-Total-Count"] == "0"


def test_fifty_concurrent_replays_make_one_job_and_use_one_hit(run_server) -> None:
    """50 identical submissions at once under one Idempotency-Key with RATE_LIMIT=2: one job, no 429, one hit."""
    server = run_server({"RATE_LIMIT": 2, "PROCESSING_MODE": "manual"})
    barrier = threading.Barrier(50)

    def submit(_: int) -> tuple[int, str]:
        with requests.Session() as s:
            barrier.wait()
            response = s.post(f"{server.url}/translate", json={"video_url": "https://e.x/v.mp4"}, timeout=30,
                              headers={"X-User-Id": "alice", "Idempotency-Key": "order-17"})
            return response.status_code, response.json()["job_id"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(submit, range(50)))
    assert {status for status, _ in answers} == {202} and len({job for _, job in answers}) == 1
    second = requests.post(f"{server.url}/translate", headers={"X-User-Id": "alice"}, timeout=5)
    assert second.status_code == 202 and second.headers["X-RateLimit-Remaining"] == "0"


def test_a_token_in_the_query_string_never_reaches_the_log(tmp_path: Path, run_server) -> None:
    """?token= and ?api_key= values are written to the access log as REDACTED, long-polls included."""
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        from tests.conftest import RunningServer

        server = RunningServer({})
        server.stderr = log
        server.start()
        try:
            job = requests.post(f"{server.url}/translate", timeout=5).json()["job_id"]
            requests.get(f"{server.url}/healthz?token=s3cret-one", timeout=5)
            requests.get(f"{server.url}/status/{job}?wait=0.1&api_key=s3cret-two", timeout=5)
        finally:
            server.stop()
    logged = log_path.read_text()
    assert "s3cret" not in logged
    assert "/healthz?token=REDACTED" in logged and "api_key=REDACTED" in logged


# --------------------------------------------------------------------------------------------- long-polls


def test_a_held_long_poll_answers_what_the_flask_view_answers(run_server) -> None:
    """From the event loop, a long-poll's body and headers are the view's, plus Preference-Applied; errors too."""
    server = run_server({"TRANSLATION_DELAY": 0.2, "MAX_WAIT": 5})
    job = requests.post(f"{server.url}/translate", json={"role": "free"}, timeout=5).json()
    held = requests.get(f"{server.url}/status/{job['job_id']}?wait=5&since={job['version']}", timeout=10)
    assert held.headers["Preference-Applied"] == "wait=5" and held.json()["version"] > job["version"]
    requests.get(f"{server.url}/status/{job['job_id']}?wait=5&since=2", timeout=10)  # until it completes
    plain = requests.get(f"{server.url}/status/{job['job_id']}", timeout=5)
    waited = requests.get(f"{server.url}/status/{job['job_id']}", headers={"Prefer": "wait=3"}, timeout=5)
    assert plain.json()["status"] == "completed" and waited.content == plain.content
    assert waited.headers["Preference-Applied"] == "wait=3"
    names = {"Content-Type", "ETag", "X-Content-Type-Options", "Cache-Control"}
    assert {n: waited.headers[n] for n in names} == {n: plain.headers[n] for n in names}
    for query, status, code in (("wait=abc", 400, "invalid_parameter"), ("wait=1&since=-1", 400, "invalid_parameter")):
        answer = requests.get(f"{server.url}/status/{job['job_id']}?{query}", timeout=5)
        assert answer.status_code == status and answer.json()["code"] == code
    missing = requests.get(f"{server.url}/status/00000000-0000-4000-8000-000000000000?wait=1", timeout=5)
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/problem+json"
    newest = requests.get(f"{server.url}/status?wait=1", headers={"X-User-Id": "nobody-here"}, timeout=5)
    assert newest.status_code == 404


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="counts threads through /proc (Linux)")
def test_hundreds_of_held_long_polls_hold_no_thread_and_wake_together(run_server) -> None:
    """300 long-polls on one job hold no thread each; cancelling the job answers them all with the same bytes."""
    server = run_server({"PROCESSING_MODE": "manual", "MAX_WAIT": 30})
    job_id = requests.post(f"{server.url}/translate", timeout=5).json()["job_id"]
    before = threads_of(server.pid)
    request = f"GET /status/{job_id}?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(300)]
    try:
        for sock in sockets:
            sock.sendall(request)
        deadline = time.monotonic() + 10
        while requests.get(f"{server.url}/healthz", timeout=5).status_code == 200 and time.monotonic() < deadline:
            if threads_of(server.pid) <= before + 4 and _all_pending(sockets):
                break
        assert threads_of(server.pid) <= before + 4
        assert requests.post(f"{server.url}/cancel/{job_id}", headers=ADMIN, timeout=5).status_code == 200
        bodies = {_read_answer(sock) for sock in sockets}
    finally:
        for sock in sockets:
            sock.close()
    assert len(bodies) == 1
    (body,) = bodies
    assert json.loads(body)["status"] == "cancelled"


def _all_pending(sockets: list[socket.socket]) -> bool:
    """Tell whether none of the sockets has an answer yet (a peek that does not consume)."""
    for sock in sockets:
        sock.setblocking(False)
        try:
            if sock.recv(1, socket.MSG_PEEK):
                return False
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
    return True


def _read_answer(sock: socket.socket, wait: int | None = 30) -> bytes:
    """Read one answer from `sock`: a 200 (that honoured `wait`, unless None); return its body."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < content_length(data):
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    if wait is not None:
        assert f"preference-applied: wait={wait}".encode() in head.lower()
    return body


def test_sigterm_answers_held_long_polls_from_the_event_loop_at_once(run_server) -> None:
    """100 held long-polls are all answered (200) within moments of SIGTERM, and the exit code is 0."""
    server = run_server({"PROCESSING_MODE": "manual", "MAX_WAIT": 60})
    job_id = requests.post(f"{server.url}/translate", timeout=5).json()["job_id"]
    request = f"GET /status/{job_id}?wait=60 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(100)]
    for sock in sockets:
        sock.sendall(request)
    requests.get(f"{server.url}/healthz", timeout=5)
    time.sleep(0.3)  # let the server take them in
    started = time.monotonic()
    answers: list[Any] = []
    try:
        assert server.stop() == 0
        # One the server had not yet taken in when the signal came is answered at once, without the wait.
        answers = [_read_answer(sock, wait=None) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert time.monotonic() - started < 5
    assert all(json.loads(body)["status"] == "pending" for body in answers)


# ------------------------------------------------------------------ held long-polls and the service's controls


def test_a_held_long_poll_gets_cors_headers_a_scripted_delay_and_a_journal_entry(run_server) -> None:
    """Served from the event loop, a long-poll still gets CORS headers, RESPONSE_DELAY and its journal entry."""
    server = run_server({"CORS_ORIGINS": "http://front.example", "RESPONSE_DELAY": "/status/*=fixed:300",
                         "PROCESSING_MODE": "manual"})
    job = requests.post(f"{server.url}/translate", headers={"X-User-Id": "cors"}, timeout=5).json()
    started = time.monotonic()
    answer = requests.get(f"{server.url}/status/{job['job_id']}", params={"wait": 0.2, "token": "hush"},
                          headers={"Origin": "http://front.example", "X-User-Id": "cors"}, timeout=5)
    took = time.monotonic() - started
    assert answer.status_code == 200 and answer.headers["Preference-Applied"] == "wait=0.2"
    assert answer.headers["Access-Control-Allow-Origin"] == "http://front.example"
    assert took >= 0.2 + 0.3  # held for the wait, then delayed
    entries = requests.get(f"{server.url}/admin/requests", params={"path": "/status/{job_id}"}, headers=ADMIN,
                           timeout=5).json()
    (entry,) = entries["requests"]
    assert entry["status"] == 200 and entry["user_id"] == "cors" and entry["route"] == "/status/{job_id}"
    assert "hush" not in entry["query"] and "wait=0.2" in entry["query"]


def test_a_held_long_poll_answers_the_jobs_scripted_status_faults(run_server) -> None:
    """A job scripted to fail its next status read fails it when the read is a long-poll, then waits as asked."""
    server = run_server({"PROCESSING_MODE": "manual"})
    script = {"status_faults": [{"status": 503, "retry_after": 1, "times": 1}]}
    job = requests.post(f"{server.url}/translate", json={"simulate": script}, timeout=5).json()
    first = requests.get(f"{server.url}/status/{job['job_id']}", params={"wait": 5}, timeout=10)
    assert first.status_code == 503 and first.json()["code"] == "scripted_fault"
    assert first.headers["Retry-After"] == "1"
    second = requests.get(f"{server.url}/status/{job['job_id']}", params={"wait": 0.1}, timeout=10)
    assert second.status_code == 200 and second.headers["Preference-Applied"] == "wait=0.1"


def test_a_held_long_poll_in_keys_mode_answers_what_the_flask_view_answers(run_server) -> None:
    """AUTH_MODE=keys: a key's own job is held in the event loop; no key, a wrong key, another user's job or
    X-User-Id get the view's 401, 404 and 403; a wrong key is counted once; the admin token reads any job."""
    server = run_server({"AUTH_MODE": "keys", "PROCESSING_MODE": "manual", "MAX_WAIT": 5, "AUTH_FAILURE_LIMIT": 2})

    def key(user: str) -> dict[str, str]:
        made = requests.post(f"{server.url}/api-keys", json={"user_id": user, "role": "premium"}, headers=ADMIN,
                             timeout=5).json()
        return {"X-Api-Key": made["api_key"]}

    alice, bob = key("alice"), key("bob")
    job = requests.post(f"{server.url}/translate", headers=alice, timeout=5).json()
    status = f"{server.url}/status/{job['job_id']}"
    mine = requests.get(status, params={"wait": 0.2}, headers=alice, timeout=5)
    assert mine.status_code == 200 and mine.headers["Preference-Applied"] == "wait=0.2"
    newest = requests.get(f"{server.url}/status", params={"wait": 0.2}, headers=alice, timeout=5)
    assert newest.status_code == 200 and newest.json()["job_id"] == job["job_id"]
    admin = requests.get(status, params={"wait": 0.2}, headers=ADMIN, timeout=5)
    assert admin.status_code == 200 and admin.headers["Preference-Applied"] == "wait=0.2"
    refusals = [(status, bob, 404), (f"{server.url}/status", bob, 404), (status, {}, 401),
                (f"{server.url}/status", {}, 401), (f"{server.url}/status", {**alice, "X-User-Id": "bob"}, 403)]
    for url, headers, code in refusals:
        held = requests.get(url, params={"wait": 1}, headers=headers, timeout=5)
        plain = requests.get(url, headers=headers, timeout=5)
        assert held.status_code == code, (url, headers)
        assert (held.json(), held.headers.get("WWW-Authenticate")) == (plain.json(),
                                                                       plain.headers.get("WWW-Authenticate"))
    wrong = {"X-Api-Key": "sk_sim_not-a-key-of-this-server-000"}
    assert [requests.get(status, params={"wait": 1}, headers=wrong, timeout=5).status_code
            for _ in range(3)] == [401, 401, 429]
    entries = requests.get(f"{server.url}/admin/requests", params={"path": "/status/{job_id}", "status": "200"},
                           headers=ADMIN, timeout=5).json()["requests"]
    assert entries[0]["user_id"] == "alice"  # the key's user, as the Flask journal records it


def test_keys_mode_long_polls_hold_no_flask_thread(run_server) -> None:
    """With a key, 30 long-polls of one job are held in the event loop: the 8 Flask threads still answer."""
    server = run_server({"AUTH_MODE": "keys", "PROCESSING_MODE": "manual", "MAX_WAIT": 30})
    alice = {"X-Api-Key": requests.post(f"{server.url}/api-keys", json={"user_id": "alice"}, headers=ADMIN,
                                        timeout=5).json()["api_key"]}
    job_id = requests.post(f"{server.url}/translate", headers=alice, timeout=5).json()["job_id"]
    with ThreadPoolExecutor(30) as pool:
        held = [pool.submit(requests.get, f"{server.url}/status/{job_id}", params={"wait": 30}, headers=alice,
                            timeout=40) for _ in range(30)]
        deadline = time.monotonic() + 10
        while not all(f.running() for f in held) and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        threading.Event().wait(0.5)  # let them reach the server and be held
        assert not any(f.done() for f in held)
        quick = requests.get(f"{server.url}/status/{job_id}", headers=alice, timeout=5)
        assert quick.status_code == 200
        assert requests.post(f"{server.url}/cancel/{job_id}", headers=ADMIN, timeout=5).status_code == 200
        answers = [f.result() for f in held]
    assert {(a.status_code, a.json()["status"]) for a in answers} == {(200, "cancelled")}
