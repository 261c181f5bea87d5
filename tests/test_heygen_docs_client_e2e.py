"""Done when: a client written only from HeyGen's public docs works against `python server.py` unchanged.

Everything below the fixture follows HeyGen's pages, not this project: `X-Api-Key` on every call
(docs.heygen.com/docs/video-translate-api), the v2 routes and their `{"error", "data"}` envelope and
statuses pending/running/success/failed (docs.heygen.com/reference/video-translate-status), the v3 routes
(developers.heygen.com/reference/create-video-translation, /docs/video-translate), a webhook endpoint added
with `POST /v1/webhook/endpoint.add` (docs.heygen.com/reference/add-a-webhook-endpoint), and a receiver that
checks the `Signature` header — the hex HMAC-SHA256 of the raw body under the endpoint's secret — and
reads `event_type` / `event_data` (docs.heygen.com/docs/using-heygens-webhook-events). Plain `requests` and
`http.server`; the only simulator-specific step is the key, seeded from API_KEYS_FILE.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av
import pytest
import requests

from tests.conftest import FAST

API_KEY = "heygen-docs-client-key-0001"


class HeyGenWebhookReceiver:
    """A webhook endpoint as HeyGen's guide writes one: verify `Signature`, then read the event."""

    def __init__(self) -> None:
        self.secret = ""
        self.events: list[dict] = []
        self.refused = 0
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_OPTIONS(self) -> None:  # HeyGen validates an endpoint with OPTIONS
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                content = self.rfile.read(int(self.headers["Content-Length"]))
                signature = self.headers.get("Signature", "")
                computed = hmac.new(receiver.secret.encode("utf-8"), msg=content, digestmod=hashlib.sha256).hexdigest()
                if hmac.compare_digest(signature, computed):
                    receiver.events.append(json.loads(content))
                    receiver.arrived.set()
                    self.send_response(200)
                else:
                    receiver.refused += 1
                    self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def heygen_api(run_server, tmp_path):
    """A simulator with one API key, as a scripted set-up makes it (API_KEYS_FILE); yields its base URL."""
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"api_key": API_KEY, "user_id": "heygen-customer", "role": "premium"}]))
    server = run_server({**FAST, "TRANSLATION_DELAY": 0.3, "ERROR_RATE": 0.0, "API_KEYS_FILE": str(keys)})
    return server.url


@pytest.fixture
def receiver():
    receiver = HeyGenWebhookReceiver()
    yield receiver
    receiver.close()


def assert_playable_mp4(content: bytes, tmp_path) -> None:
    """Assert the bytes are an MP4 whose first video frame decodes."""
    assert content[4:8] == b"ftyp"
    path = tmp_path / "translated.mp4"
    path.write_bytes(content)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    assert frame.width > 0 and frame.height > 0


def test_a_client_written_from_heygens_v2_docs_runs_unchanged(heygen_api, receiver, tmp_path):
    """List languages, add a webhook endpoint, translate, poll to success, download, receive and verify the event."""
    headers = {"accept": "application/json", "x-api-key": API_KEY}

    languages = requests.get(f"{heygen_api}/v2/video_translate/target_languages", headers=headers, timeout=10).json()
    assert languages["error"] is None
    output_language = "Spanish (Spain)" if "Spanish (Spain)" in languages["data"]["languages"] else \
        languages["data"]["languages"][0]

    added = requests.post(f"{heygen_api}/v1/webhook/endpoint.add", headers=headers, timeout=10,
                          json={"url": receiver.url, "events": ["video_translate.success", "video_translate.fail"]})
    assert added.json()["code"] == 100
    receiver.secret = added.json()["data"]["secret"]

    submitted = requests.post(f"{heygen_api}/v2/video_translate", headers=headers, timeout=10,
                              json={"video_url": "https://example.com/talk.mp4", "output_language": output_language,
                                    "title": "New Video", "callback_id": "crm-42"}).json()
    assert submitted["error"] is None
    video_translate_id = submitted["data"]["video_translate_id"]

    deadline = time.monotonic() + 30
    while True:
        status = requests.get(f"{heygen_api}/v2/video_translate/{video_translate_id}", headers=headers,
                              timeout=10).json()
        assert status["error"] is None
        if status["data"]["status"] in ("success", "failed"):
            break
        assert status["data"]["status"] in ("pending", "running")
        assert time.monotonic() < deadline, "the translation did not finish"
        time.sleep(0.2)  # polling, as HeyGen's guide does
    assert status["data"]["status"] == "success", status["data"]["message"]

    video = requests.get(status["data"]["url"], timeout=30)
    assert video.status_code == 200
    assert_playable_mp4(video.content, tmp_path)

    assert receiver.arrived.wait(15), "no webhook arrived"
    (event,) = receiver.events
    assert receiver.refused == 0
    assert event["event_type"] == "video_translate.success"
    assert event["event_data"]["video_translate_id"] == video_translate_id
    assert event["event_data"]["callback_id"] == "crm-42"
    assert event["event_data"]["output_language"] == output_language
    assert requests.get(event["event_data"]["url"], timeout=30).content[4:8] == b"ftyp"


def test_a_client_written_from_heygens_v3_docs_runs_unchanged(heygen_api, tmp_path):
    """v3: languages, a batch of two languages, poll each to completed, download video_url."""
    headers = {"accept": "application/json", "x-api-key": API_KEY, "Content-Type": "application/json"}
    languages = requests.get(f"{heygen_api}/v3/video-translations/languages", headers=headers, timeout=10).json()
    wanted = [name for name in ("English", "Spanish") if name in languages["data"]["languages"]]
    answer = requests.post(f"{heygen_api}/v3/video-translations", headers={**headers, "Idempotency-Key": "batch-1"},
                           timeout=10, json={"video": {"type": "url", "url": "https://example.com/talk.mp4"},
                                             "output_languages": wanted, "mode": "speed", "title": "Global Campaign"})
    ids = answer.json()["data"]["video_translation_ids"]
    assert len(ids) == len(wanted)
    for video_translation_id in ids:
        deadline = time.monotonic() + 30
        while True:
            data = requests.get(f"{heygen_api}/v3/video-translations/{video_translation_id}", headers=headers,
                                timeout=10).json()["data"]
            if data["status"] in ("completed", "failed"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert data["status"] == "completed", data["failure_message"]
        assert_playable_mp4(requests.get(data["video_url"], timeout=30).content, tmp_path)
