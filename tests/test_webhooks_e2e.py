"""Webhooks over real sockets: the sender's limits, a real server's deliveries, a receiver that was down, kill -9.

Ports are chosen at run time (port 0); the servers are `python server.py` subprocesses (tests/conftest.py).
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import sys
import threading
import time

import pytest
import requests

from client import WebhookReceiver, verify_webhook
from simulator.testing import ServerProcess
from simulator.testing.misbehaving import MisbehavingServer
from simulator.webhooks.sender import MAX_ANSWER_BYTES, Sender
from simulator.webhooks.signing import new_secret, signed_headers
from tests.conftest import ADMIN_TOKEN, FAST, ROOT

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET = new_secret()
FAST_HOOKS = {**FAST, "TRANSLATION_DELAY": 0.2, "ERROR_RATE": 0.0, "WEBHOOK_SECRET": SECRET}


class RawServer(socketserver.ThreadingTCPServer):
    """A TCP server on a free port that answers every request with fixed bytes, counting the requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.hits = 0
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                server.hits += 1
                try:
                    self.request.sendall(server.answer)
                except OSError:
                    pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        """Return the server's URL."""
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


# ------------------------------------------------------------------------------------ the sender


def test_the_sender_posts_and_keeps_the_connection_alive():
    """Two posts to a keep-alive receiver both succeed and the receiver verifies them."""
    with Sender() as sender, WebhookReceiver(SECRET) as receiver:
        for n in range(2):
            body = f'{{"type": "job.completed", "n": {n}}}'.encode()
            outcome = sender.post(receiver.url, body, signed_headers(SECRET, f"msg_{n}", time.time(), body), 5)
            assert outcome.delivered
        assert [e.event["n"] for e in receiver.wait_for(2, 5)] == [0, 1]


class KeepAliveServer(socketserver.ThreadingTCPServer):
    """Answers 200 to every request of a connection, keeping it open; counts connections and requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.connections = self.requests = 0
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                server.connections += 1
                while True:
                    length = 0
                    line = self.rfile.readline()
                    if not line:
                        return
                    while line not in (b"\r\n", b""):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":")[1])
                        line = self.rfile.readline()
                    self.rfile.read(length)
                    server.requests += 1
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def test_the_sender_reuses_one_connection_for_successive_deliveries():
    """Three deliveries to one receiver from one thread go over a single kept-alive connection."""
    with KeepAliveServer() as server, Sender() as sender:
        for _ in range(3):
            assert sender.post(f"http://127.0.0.1:{server.server_address[1]}/hook", b"{}", {}, 5).delivered
    assert (server.connections, server.requests) == (1, 3)


def test_the_sender_never_follows_a_redirect():
    """A 302 is an outcome (a failed attempt), and its Location is never visited."""
    with RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as target:
        answer = f"HTTP/1.1 302 Found\r\nLocation: {target.url}\r\nContent-Length: 0\r\n\r\n".encode()
        with RawServer(answer) as redirecting, Sender() as sender:
            outcome = sender.post(redirecting.url, b"{}", {}, 5)
        assert (outcome.status, outcome.delivered, target.hits) == (302, False, 0)


def test_the_sender_reads_at_most_64_kib_of_an_answer():
    """A receiver answering 20 MB costs a bounded read: the attempt ends without taking it all in."""
    big = b"x" * (20 * 1024 * 1024)
    with RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big) as server:
        started = time.monotonic()
        with Sender() as sender:
            outcome = sender.post(server.url, b"{}", {}, 5)
    assert outcome.delivered and time.monotonic() - started < 2
    assert MAX_ANSWER_BYTES == 64 * 1024


@pytest.mark.parametrize("mode", ["silent", "trickle-body"])
def test_the_sender_gives_up_at_the_timeout(mode):
    """A receiver that never answers, or trickles its answer, is cut off after the timeout."""
    with MisbehavingServer(mode, interval=0.1) as server:
        started = time.monotonic()
        with Sender() as sender:
            outcome = sender.post(f"{server.url}/hook", b"{}", {}, 0.5)
    assert outcome.status in (None, 200) and not (outcome.status == 200 and outcome.error is None)
    assert time.monotonic() - started < 2.0
    assert "timed out" in (outcome.error or "")


def test_a_refused_connection_is_an_outcome_not_an_exception(closed_port):
    """Nobody listening is a failed attempt with the reason."""
    with Sender() as sender:
        outcome = sender.post(f"http://127.0.0.1:{closed_port}/hook", b"{}", {}, 1)
    assert outcome.status is None and "Refused" in (outcome.error or "")


# ------------------------------------------------------------------------------------ a real server


def issue_key(url: str, user: str = "alice", role: str = "premium") -> dict[str, str]:
    """Issue an API key on a running server and return the header presenting it."""
    answer = requests.post(f"{url}/api-keys", json={"user_id": user, "role": role}, headers=ADMIN, timeout=5)
    return {"X-Api-Key": answer.json()["api_key"]}


def test_a_real_server_delivers_registered_and_callback_webhooks(run_server):
    """Endpoint and callback deliveries arrive signed, with HeyGen's and the native payload."""
    server = run_server(FAST_HOOKS)
    key = issue_key(server.url)
    with WebhookReceiver(SECRET) as callbacks, WebhookReceiver("set once registered") as endpoint:
        added = requests.post(f"{server.url}/v1/webhook/endpoint.add", headers=key, timeout=5,
                              json={"url": endpoint.url, "events": ["job.completed"]}).json()["data"]
        endpoint.secret = added["secret"]  # the endpoint's own secret, shown once
        job_id = requests.post(f"{server.url}/v2/video_translate", headers=key, timeout=5,
                               json={"video_url": "https://videos.example/a.mp4", "output_language": "German",
                                     "callback_url": callbacks.url, "callback_id": "c-9"}).json()["data"][
            "video_translate_id"]
        (heygen,) = callbacks.wait_for(1, 10)
        (native,) = endpoint.wait_for(1, 10)
    assert heygen.event_type == "video_translate.success"
    assert heygen.event["event_data"]["video_translate_id"] == job_id
    assert heygen.event["event_data"]["callback_id"] == "c-9"
    assert heygen.event["event_data"]["url"].startswith(f"{server.url}/results/{job_id}?expires=")
    assert native.event["type"] == "job.completed" and native.event["data"]["job_id"] == job_id


def test_a_receiver_down_for_a_while_gets_every_event_once_it_is_back(run_server):
    """While the receiver is down, deliveries are retried; once it is back each event arrives (deduped: once)."""
    server = run_server({**FAST_HOOKS, "WEBHOOK_RETRY_SCALE": 0.001})
    probe = WebhookReceiver(SECRET)
    port = probe.port
    probe.stop()  # the port is free: nothing listens there now
    url = f"http://127.0.0.1:{port}/webhooks"
    ids = [requests.post(f"{server.url}/translate", json={"role": "premium", "callback_url": url},
                         timeout=5).json()["job_id"] for _ in range(5)]
    time.sleep(1.0)  # real time passes with the receiver down: the first attempts fail
    log = requests.get(f"{server.url}/webhooks/deliveries", headers=ADMIN, timeout=5).json()
    assert log["total"] == 5 and all(d["attempts"] >= 1 for d in log["deliveries"])
    with WebhookReceiver(SECRET, port=port) as receiver:
        events = receiver.wait_for(5, 15)
    assert sorted(e.event["data"]["job_id"] for e in events) == sorted(ids)


def test_deliveries_pending_at_kill_9_are_delivered_after_a_restart(tmp_path):
    """SQLite store: the server is killed with deliveries pending; restarted, it delivers every one."""
    probe = WebhookReceiver(SECRET)
    port = probe.port
    probe.stop()
    url = f"http://127.0.0.1:{port}/webhooks"
    # Retries 1.5 s (±20 %) apart at first: the kill comes while they are pending, whichever attempt it follows.
    settings = {**FAST_HOOKS, "WEBHOOK_RETRY_SCALE": 0.3, "STORE": f"sqlite:///{tmp_path / 'jobs.db'}"}
    server = ServerProcess(settings, cwd=ROOT).start()
    try:
        ids = [requests.post(f"{server.url}/translate", json={"role": "premium", "callback_url": url},
                             timeout=5).json()["job_id"] for _ in range(3)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            log = requests.get(f"{server.url}/webhooks/deliveries", headers=ADMIN, timeout=5).json()
            if log["total"] == 3 and all(d["attempts"] >= 1 for d in log["deliveries"]):
                break
            time.sleep(0.05)
        assert {d["status"] for d in log["deliveries"]} == {"pending"}
    finally:
        server.kill()
    with WebhookReceiver(SECRET, port=port) as receiver, ServerProcess(settings, cwd=ROOT):
        events = receiver.wait_for(3, 20)
    assert sorted(e.event["data"]["job_id"] for e in events) == sorted(ids)


def test_the_listen_command_prints_verified_events():
    """`python client.py listen --port P --secret S` prints one line per verified event and exits after --count."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, str(ROOT / "client.py"), "listen", "--port", str(port), "--secret",
                                SECRET, "--count", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        body = b'{"event_type":"video_translate.success","event_data":{"video_translate_id":"job-7"}}'
        deadline = time.monotonic() + 10
        while True:
            try:
                headers = signed_headers(SECRET, "msg_cli", time.time(), body)
                answer = requests.post(f"http://127.0.0.1:{port}/webhooks", data=body, headers=headers, timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert answer.status_code == 200
        out, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out.split() == ["msg_cli", "video_translate.success", "job-7"]
    assert verify_webhook(body, signed_headers(SECRET, "x", time.time(), body), SECRET)


# ------------------------------------------------------------------------------------ the receiver


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes to 127.0.0.1:port and return everything answered until the connection closes or idles."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(request)
        answer = b""
        try:
            while chunk := conn.recv(65536):
                answer += chunk
                if b"\r\n\r\n{}" in answer:
                    break
        except TimeoutError:
            pass
    return answer


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"OPTIONS /webhooks HTTP/1.1\r\nHost: x\r\n\r\n", b"200"),
    (b"GET /webhooks HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
    (b"POST /webhooks HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"401"),
    (b"POST /webhooks HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
    (b"POST /webhooks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"411"),
    (b"garbage\r\n\r\n", b"400"),
])
def test_the_receiver_answers_every_request_sensibly(request_bytes, status):
    """OPTIONS is 200, other methods 405, unsigned 401, too big 413, chunked 411, garbage 400."""
    with WebhookReceiver(SECRET) as receiver:
        answer = raw_exchange(receiver.port, request_bytes)
    assert answer.split(b" ")[1] == status


def test_the_receiver_counts_a_duplicate_once():
    """The same webhook-id twice is accepted twice (200) but kept once."""
    body = b'{"type": "job.completed"}'
    headers = signed_headers(SECRET, "msg_dup", time.time(), body)
    with WebhookReceiver(SECRET) as receiver:
        for _ in range(2):
            assert requests.post(receiver.url, data=body, headers=headers, timeout=5).status_code == 200
    assert (len(receiver.events), receiver.duplicates) == (1, 1)
