"""HeyGen's v2 and v3 video-translation routes: shapes, statuses, errors in HeyGen's envelope, idempotency, files."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from server import create_app
from simulator.heygen.languages import LANGUAGES
from simulator.heygen.replays import ReplayGate
from simulator.media import probe, resolve_language
from simulator.media.samples import write_sample
from tests.conftest import FAST

ADMIN = {"Authorization": "Bearer test-admin-token"}
VIDEO = "https://videos.example/talk.mp4"


@pytest.fixture
def app(clock):
    return create_app({**FAST, "RATE_LIMIT": 3}, clock=clock)


@pytest.fixture
def client(app):
    return app.test_client()


def key_for(client, user: str = "alice", role: str = "free") -> dict[str, str]:
    """Issue a key and return the header presenting it."""
    response = client.post("/api-keys", json={"user_id": user, "role": role}, headers=ADMIN)
    return {"X-Api-Key": response.get_json()["api_key"]}


@pytest.fixture
def alice(client) -> dict[str, str]:
    return key_for(client, "alice", "free")


def v2_submit(client, headers, **body: Any) -> dict[str, Any]:
    """POST /v2/video_translate and return the answer's JSON (asserting 200)."""
    response = client.post("/v2/video_translate", json={"video_url": VIDEO, **body}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def v3_submit(client, headers, languages=("Spanish",), extra_headers=None, **body: Any):
    """POST /v3/video-translations and return the response."""
    payload = {"video": {"type": "url", "url": VIDEO}, "output_languages": list(languages), **body}
    return client.post("/v3/video-translations", json=payload, headers={**headers, **(extra_headers or {})})


def assert_heygen_error(response, status: int, code: str, *, v3: bool = False, param: str | None = None):
    """Assert HeyGen's error envelope (never problem+json) with `status` and `code`; return the error object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ({"error"} if v3 else {"error", "data"})
    if not v3:
        assert body["data"] is None
    error = body["error"]
    assert error["code"] == code and error["message"]
    assert error["doc_url"].startswith("https://developers.heygen.com/docs/error-codes#")
    if param is not None:
        assert error["param"] == param
    return error


# ------------------------------------------------------------------------------------ languages


@pytest.mark.parametrize(("path", "envelope"), [
    ("/v2/video_translate/target_languages", {"error": None}),
    ("/v3/video-translations/languages", {}),
])
def test_the_languages_routes_list_heygens_names(client, alice, path, envelope):
    """Both languages routes answer the supported names in their version's envelope."""
    body = client.get(path, headers=alice).get_json()
    assert {k: v for k, v in body.items() if k != "data"} == envelope
    languages = body["data"]["languages"]
    assert "English" in languages and "Spanish (Spain)" in languages and len(languages) == len(set(languages))


# ------------------------------------------------------------------------------------ v2


def test_v2_submits_and_reports_pending_running_success_with_a_url(client, clock, alice):
    """A v2 translation goes pending → running → success, with a download URL only at the end."""
    client.post("/config", json={"PROCESSING_MODE": "manual"}, headers=ADMIN)
    answer = v2_submit(client, alice, output_language="Spanish (Spain)", title="Talk", callback_id="c-17")
    assert answer["error"] is None
    job_id = answer["data"]["video_translate_id"]
    status = client.get(f"/v2/video_translate/{job_id}", headers=alice).get_json()
    assert status == {"error": None, "data": {"video_translate_id": job_id, "title": "Talk",
                                              "output_language": "Spanish (Spain)", "status": "pending",
                                              "url": None, "message": None, "callback_id": "c-17"}}
    client.post("/process_jobs", headers=ADMIN)
    assert client.get(f"/v2/video_translate/{job_id}", headers=alice).get_json()["data"]["status"] == "running"
    clock.advance(10)
    data = client.get(f"/v2/video_translate/{job_id}", headers=alice).get_json()["data"]
    assert data["status"] == "success" and data["url"].startswith(f"http://localhost/results/{job_id}?expires=")


def test_v2_output_languages_makes_one_job_per_language(client, alice):
    """v2's output_languages answers one id per language, in order."""
    ids = v2_submit(client, alice, output_languages=["French", "German"])["data"]["video_translate_ids"]
    langs = [client.get(f"/v2/video_translate/{i}", headers=alice).get_json()["data"]["output_language"]
             for i in ids]
    assert langs == ["French", "German"]


def test_language_names_are_matched_without_regard_to_case(client, alice):
    """'spanish (spain)' is HeyGen's 'Spanish (Spain)'."""
    job_id = v2_submit(client, alice, output_language="spanish (spain)")["data"]["video_translate_id"]
    data = client.get(f"/v2/video_translate/{job_id}", headers=alice).get_json()["data"]
    assert data["output_language"] == "Spanish (Spain)"


# ------------------------------------------------------------------------------------ v3


def test_v3_submits_one_job_per_language_and_reports_completed(client, clock, alice):
    """v3 answers a list of ids; each completes with video_url, duration and a Unix created_at."""
    response = v3_submit(client, alice, ("Spanish", "Japanese"), title="Launch", callback_id="cb")
    assert response.status_code == 200
    ids = response.get_json()["data"]["video_translation_ids"]
    assert len(ids) == 2
    clock.advance(30)
    data = client.get(f"/v3/video-translations/{ids[1]}", headers=alice).get_json()["data"]
    assert data["status"] == "completed" and data["output_language"] == "Japanese"
    assert data["video_url"].startswith(f"http://localhost/results/{ids[1]}?expires=") and data["duration"] > 0
    assert isinstance(data["created_at"], int) and data["failure_message"] is None
    assert (data["title"], data["callback_id"]) == ("Launch", "cb")


def test_a_job_that_fails_for_good_is_failed_with_a_message(clock):
    """With every attempt failing, v3 says failed with failure_message, v2 failed with message."""
    client = create_app({**FAST, "ERROR_RATE": 1.0, "MAX_RETRIES": 0}, clock=clock).test_client()
    alice = key_for(client)
    job_id = v3_submit(client, alice).get_json()["data"]["video_translation_ids"][0]
    clock.advance(30)
    v3 = client.get(f"/v3/video-translations/{job_id}", headers=alice).get_json()["data"]
    assert v3["status"] == "failed" and "gave up after 1 attempts" in v3["failure_message"]
    assert v3["video_url"] is None
    v2 = client.get(f"/v2/video_translate/{job_id}", headers=alice).get_json()["data"]
    assert v2["status"] == "failed" and v2["message"] == v3["failure_message"]


def test_a_cancelled_job_is_failed_with_the_reason(client, alice):
    """An admin's cancellation shows as failed, the reason in the message."""
    job_id = v2_submit(client, alice, output_language="German")["data"]["video_translate_id"]
    client.post(f"/cancel/{job_id}", json={"reason": "duplicate order"}, headers=ADMIN)
    data = client.get(f"/v2/video_translate/{job_id}", headers=alice).get_json()["data"]
    assert (data["status"], data["message"]) == ("failed", "The translation was cancelled: duplicate order")


# ------------------------------------------------------------------------------------ the same jobs underneath


def test_heygen_jobs_are_the_same_jobs_as_the_native_routes(client, clock):
    """A HeyGen job runs as the key's user and role and shows in /status, /jobs and /queue."""
    client.post("/config", json={"PROCESSING_MODE": "manual"}, headers=ADMIN)
    vip = key_for(client, "vip", "premium")
    job_id = v3_submit(client, vip, ("French",)).get_json()["data"]["video_translation_ids"][0]
    native = client.get(f"/status/{job_id}").get_json()
    assert (native["user_id"], native["role"], native["target_language"], native["video_url"]) == \
        ("vip", "premium", "French", VIDEO)
    assert job_id in client.get("/jobs?user_id=vip").get_json()["pending"]["premium"]
    assert [j["job_id"] for j in client.get("/queue").get_json()["queued"]] == [job_id]


def test_a_free_keys_heygen_submissions_count_against_the_hourly_limit(client, alice):
    """Free keys share RATE_LIMIT with POST /translate, one per language; refused with HeyGen's 429."""
    assert client.post("/translate", headers=alice).status_code == 202
    assert v3_submit(client, alice, ("French", "German")).status_code == 200
    refused = v3_submit(client, alice, ("Italian",))
    assert_heygen_error(refused, 429, "rate_limit_exceeded", v3=True)
    assert int(refused.headers["Retry-After"]) > 0
    premium = key_for(client, "vip", "premium")
    assert v3_submit(client, premium, ("Italian", "Dutch", "Polish", "Thai")).status_code == 200


def test_a_user_sees_only_their_own_heygen_jobs(client, alice):
    """Another user's job id is not found on the HeyGen routes, in any AUTH_MODE."""
    job_id = v2_submit(client, alice, output_language="German")["data"]["video_translate_id"]
    bob = key_for(client, "bob")
    assert_heygen_error(client.get(f"/v2/video_translate/{job_id}", headers=bob), 404, "not_found")
    assert_heygen_error(client.get(f"/v3/video-translations/{job_id}", headers=bob), 404, "not_found", v3=True)


# ------------------------------------------------------------------------------------ errors, HeyGen's way


BAD_V2 = [
    ({}, "video_url"),
    ({"video_url": VIDEO}, "output_language"),
    ({"video_url": VIDEO, "output_language": "German", "output_languages": ["French"]}, "output_language"),
    ({"video_url": "not a url", "output_language": "German"}, "video_url"),
    ({"video_url": VIDEO, "output_language": "Klingon"}, "output_language"),
    ({"video_url": VIDEO, "output_languages": []}, "output_languages"),
    ({"video_url": VIDEO, "output_languages": ["German", "german"]}, "output_languages"),
    ({"video_url": VIDEO, "output_language": "German", "speaker_num": 0}, "speaker_num"),
    ({"video_url": VIDEO, "output_language": "German", "mode": "fast"}, "mode"),
    ({"video_url": VIDEO, "output_language": "German", "translate_audio_only": "yes"}, "translate_audio_only"),
    ({"video_url": VIDEO, "output_language": "German", "callback_url": "https://example.com/hook"}, "callback_url"),
    ({"video_url": VIDEO, "output_language": "German", "start_time": 5, "end_time": 2}, "end_time"),
    ({"video_url": VIDEO, "output_language": "German", "colour": "red"}, "colour"),
]
BAD_V3 = [
    ({"output_languages": ["German"]}, "video"),
    ({"video": {"type": "url", "url": VIDEO}}, "output_languages"),
    ({"video": {"type": "asset_id", "asset_id": "a1"}, "output_languages": ["German"]}, "video"),
    ({"video": {"type": "url"}, "output_languages": ["German"]}, "video"),
    ({"video": VIDEO, "output_languages": ["German"]}, "video"),
    ({"video": {"type": "url", "url": VIDEO}, "output_languages": "German"}, "output_languages"),
    ({"video": {"type": "url", "url": VIDEO}, "output_languages": ["Elvish"]}, "output_languages"),
]


@pytest.mark.parametrize(("body", "param"), BAD_V2)
def test_a_bad_v2_body_is_400_invalid_parameter_naming_the_field(client, alice, body, param):
    """Each bad v2 body gets HeyGen's 400 invalid_parameter with `param`, and no job is made."""
    response = client.post("/v2/video_translate", json=body, headers=alice)
    assert_heygen_error(response, 400, "invalid_parameter", param=param)
    assert client.get("/healthz").get_json()["jobs"] == 0


@pytest.mark.parametrize(("body", "param"), BAD_V3)
def test_a_bad_v3_body_is_400_invalid_parameter_naming_the_field(client, alice, body, param):
    """Each bad v3 body gets HeyGen's 400 invalid_parameter with `param`, and no job is made."""
    response = client.post("/v3/video-translations", json=body, headers=alice)
    assert_heygen_error(response, 400, "invalid_parameter", v3=True, param=param)
    assert client.get("/healthz").get_json()["jobs"] == 0


@pytest.mark.parametrize(("data", "v3"), [("{", False), ("[1]", True), (b"\xff", True)])
def test_a_body_that_is_not_a_json_object_is_invalid_parameter(client, alice, data, v3):
    """Malformed JSON and non-objects are HeyGen 400s too, never problem+json."""
    path = "/v3/video-translations" if v3 else "/v2/video_translate"
    assert_heygen_error(client.post(path, data=data, headers=alice), 400, "invalid_parameter", v3=v3)


@pytest.mark.parametrize(("method", "path", "v3"), [
    ("get", "/v2/video_translate/target_languages", False),
    ("post", "/v2/video_translate", False),
    ("get", "/v3/video-translations/abc", True),
    ("post", "/v3/video-translations", True),
])
def test_without_a_key_heygen_routes_are_401_unauthorized(client, method, path, v3):
    """HeyGen's routes always need X-Api-Key, in open mode too."""
    assert_heygen_error(getattr(client, method)(path), 401, "unauthorized", v3=v3)


def test_a_wrong_key_is_401_in_heygens_envelope(client):
    """A wrong X-Api-Key on a HeyGen route is HeyGen's 401."""
    response = client.get("/v3/video-translations/languages", headers={"X-Api-Key": "sk_sim_wrong-key-12345678"})
    assert_heygen_error(response, 401, "unauthorized", v3=True)


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("get", "/v2/video_translate/00000000-0000-4000-8000-000000000000", 404, "not_found"),
    ("get", "/v3/video-translations/" + "x" * 100, 404, "not_found"),
    ("delete", "/v2/video_translate", 405, "method_not_allowed"),
    ("get", "/v3/video-translations/a/b", 404, "not_found"),
])
def test_unknown_ids_paths_and_methods_answer_in_heygens_envelope(client, alice, method, path, status, code):
    """404 and 405 under HeyGen's paths keep HeyGen's envelope."""
    assert_heygen_error(getattr(client, method)(path, headers=alice), status, code, v3=path.startswith("/v3"))


def test_an_oversized_body_is_payload_too_large(client, alice):
    """A body over 64 KiB is HeyGen's 413 payload_too_large."""
    response = client.post("/v3/video-translations", data="x" * (64 * 1024 + 1), headers=alice)
    assert_heygen_error(response, 413, "payload_too_large", v3=True)


# ------------------------------------------------------------------------------------ v3 Idempotency-Key


def test_an_idempotency_key_replays_the_first_answer_even_with_another_body(client, alice):
    """The same key answers the same ids again (Idempotent-Replayed), makes no job, even if the body changed."""
    first = v3_submit(client, alice, ("French",), extra_headers={"Idempotency-Key": "order-17"})
    again = v3_submit(client, alice, ("German", "Dutch"), extra_headers={"Idempotency-Key": "order-17"})
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/healthz").get_json()["jobs"] == 1


def test_keys_are_per_user_and_expire_after_24_hours(client, clock, alice):
    """Another user's same key is independent; after 24 hours the key makes new jobs."""
    bob = key_for(client, "bob")
    mine = v3_submit(client, alice, extra_headers={"Idempotency-Key": "k1"}).get_json()
    theirs = v3_submit(client, bob, extra_headers={"Idempotency-Key": "k1"}).get_json()
    assert mine != theirs
    clock.advance(24 * 3600 + 1)
    later = v3_submit(client, alice, extra_headers={"Idempotency-Key": "k1"}).get_json()
    assert later != mine


def test_a_duplicate_in_flight_is_409_request_in_progress(app, client, alice):
    """While a request with the key is being answered, another with the same key gets 409."""
    gate = app.extensions["simulator"].heygen.replays
    with gate.hold(ReplayGate.scope("alice", "POST /v3/video-translations", "busy-1")):
        response = v3_submit(client, alice, extra_headers={"Idempotency-Key": "busy-1"})
    assert_heygen_error(response, 409, "request_in_progress", v3=True)
    assert v3_submit(client, alice, extra_headers={"Idempotency-Key": "busy-1"}).status_code == 200


@pytest.mark.parametrize("bad_key", ["has space", "x" * 256, "ключ", ""])
def test_a_malformed_idempotency_key_is_refused(client, alice, bad_key):
    """Keys must be 1–255 characters of [A-Za-z0-9_:.-]."""
    response = v3_submit(client, alice, extra_headers={"Idempotency-Key": bad_key})
    assert_heygen_error(response, 400, "invalid_parameter", v3=True, param="Idempotency-Key")


def test_a_refused_request_is_not_kept_for_replay(client, alice):
    """A key whose first request was refused works once the request is corrected."""
    bad = client.post("/v3/video-translations", json={"output_languages": ["German"]},
                      headers={**alice, "Idempotency-Key": "fix-me"})
    assert bad.status_code == 400
    assert v3_submit(client, alice, extra_headers={"Idempotency-Key": "fix-me"}).status_code == 200


# ------------------------------------------------------------------------------------ this server's uploads


def test_a_video_url_naming_an_upload_of_this_server_translates_that_upload(clock, tmp_path):
    """POST /uploads, then v3 with its URL: the jobs carry the upload, the result is it remuxed, duration is its."""
    write_sample(tmp_path / "talk.mp4", seconds=1.0, audio_language="eng")
    app = create_app({**FAST, "DATA_DIR": str(tmp_path / "data")}, clock=clock)
    client = app.test_client()
    try:
        alice = key_for(client)
        with (tmp_path / "talk.mp4").open("rb") as f:
            upload = client.post("/uploads", data={"file": (f, "talk.mp4")}, content_type="multipart/form-data",
                                 headers=alice).get_json()
        video = {"type": "url", "url": f"http://localhost/uploads/{upload['upload_id']}"}
        response = client.post("/v3/video-translations", json={"video": video, "output_languages": ["German"]},
                               headers=alice)
        (job_id,) = response.get_json()["data"]["video_translation_ids"]
        assert client.get(f"/status/{job_id}", headers=alice).get_json()["upload_id"] == upload["upload_id"]
        clock.advance(30)
        data = client.get(f"/v3/video-translations/{job_id}", headers=alice).get_json()["data"]
        assert data["status"] == "completed" and data["duration"] == upload["duration_seconds"]
        url = urlsplit(data["video_url"])
        with client.get(f"{url.path}?{url.query}") as download:
            assert download.status_code == 200
            (tmp_path / "result.mp4").write_bytes(download.get_data())
        info = probe(tmp_path / "result.mp4")
        assert abs(info.duration_seconds - upload["duration_seconds"]) < 0.1
        assert any(stream.language == "deu" for stream in info.streams)
    finally:
        app.extensions["job_files"].close()


def test_a_video_url_naming_a_missing_upload_is_a_400(client, alice):
    """An upload URL of this server whose upload does not exist is invalid_parameter naming the field."""
    body = {"video_url": "http://localhost/uploads/no-such-upload", "output_language": "German"}
    refused = client.post("/v2/video_translate", json=body, headers=alice)
    assert_heygen_error(refused, 400, "invalid_parameter", param="video_url")
    assert client.get("/healthz").get_json()["jobs"] == 0


# ------------------------------------------------------------------------------------ scripted outcomes


def test_x_simulate_scripts_every_job_of_a_heygen_submission(clock):
    """X-Simulate on v3 makes each language's job fail as scripted; HeyGen's failure_message carries the message."""
    client = create_app({**FAST, "MAX_RETRIES": 0}, clock=clock).test_client()
    alice = key_for(client)
    script = '{"outcomes": ["fail"], "fail_message": "Voice not found"}'
    response = v3_submit(client, alice, ("French", "German"), extra_headers={"X-Simulate": script})
    ids = response.get_json()["data"]["video_translation_ids"]
    clock.advance(30)
    for job_id in ids:
        data = client.get(f"/v3/video-translations/{job_id}", headers=alice).get_json()["data"]
        assert data["status"] == "failed" and "Voice not found" in data["failure_message"]


def test_a_scripted_status_fault_answers_in_heygens_envelope(client, alice):
    """A job's status_faults strike HeyGen's status route too: 503 in the v2 envelope with Retry-After, then 200."""
    script = '{"status_faults": [{"status": 503, "retry_after": 2, "times": 1}]}'
    response = client.post("/v2/video_translate", json={"video_url": VIDEO, "output_language": "German"},
                           headers={**alice, "X-Simulate": script})
    job_id = response.get_json()["data"]["video_translate_id"]
    faulted = client.get(f"/v2/video_translate/{job_id}", headers=alice)
    assert_heygen_error(faulted, 503, "service_unavailable")
    assert faulted.headers["Retry-After"] == "2"
    assert client.get(f"/v2/video_translate/{job_id}", headers=alice).status_code == 200


def test_a_scripted_heygen_submission_is_refused_while_scenarios_are_off_and_uses_no_hour(clock):
    """SCENARIOS=off: X-Simulate is 403 forbidden in HeyGen's envelope, and the refusal costs no submission."""
    client = create_app({**FAST, "SCENARIOS": "off", "RATE_LIMIT": 1}, clock=clock).test_client()
    alice = key_for(client)
    refused = v3_submit(client, alice, extra_headers={"X-Simulate": '{"outcomes": ["fail"]}'})
    assert_heygen_error(refused, 403, "forbidden", v3=True)
    assert v3_submit(client, alice).status_code == 200


def test_a_malformed_x_simulate_is_a_heygen_400(client, alice):
    """An X-Simulate that is not a valid script is 400 invalid_parameter, and no job is made."""
    refused = v3_submit(client, alice, extra_headers={"X-Simulate": '{"outcomes": ["explode"]}'})
    assert_heygen_error(refused, 400, "invalid_parameter", v3=True)
    assert client.get("/healthz").get_json()["jobs"] == 0


# ------------------------------------------------------------------------------------ result files


def completed_url(client, clock, headers) -> str:
    """Submit a v2 translation, let it complete, and return its download URL."""
    job_id = v2_submit(client, headers, output_language="German")["data"]["video_translate_id"]
    clock.advance(30)
    return client.get(f"/v2/video_translate/{job_id}", headers=headers).get_json()["data"]["url"]


def test_the_url_downloads_a_playable_mp4_tagged_with_the_language(client, clock, alice, tmp_path):
    """The signed URL is the job's GET /results/<id>: it needs no key and serves an MP4 whose audio is German."""
    url = urlsplit(completed_url(client, clock, alice))
    assert url.path.startswith("/results/")
    with client.get(f"{url.path}?{url.query}") as response:
        assert response.status_code == 200 and response.mimetype == "video/mp4"
        path = tmp_path / "result.mp4"
        path.write_bytes(response.get_data())
    info = probe(path)
    assert info.video is not None and info.duration_seconds > 2
    assert any(stream.language == "deu" for stream in info.streams)


@pytest.mark.parametrize("tamper", ["signature", "expires", "no-signature", "no-expiry"])
def test_a_tampered_link_is_refused(client, clock, alice, tamper):
    """A link whose signature or expiry was changed, or that lacks one of them, is 403 invalid_link."""
    url = urlsplit(completed_url(client, clock, alice))
    expires, signature = url.query.split("&")
    query = {"signature": url.query.replace("signature=", "signature=0"),
             "expires": url.query.replace("expires=", "expires=1"), "no-signature": expires,
             "no-expiry": signature}[tamper]
    response = client.get(f"{url.path}?{query}")
    assert response.status_code == 403 and response.get_json()["code"] == "invalid_link"


def test_a_link_opens_only_its_own_job(client, clock, alice):
    """A genuine link of one job, put on another job's result, is refused."""
    url = urlsplit(completed_url(client, clock, alice))
    other = urlsplit(completed_url(client, clock, alice))
    assert client.get(f"{other.path}?{url.query}").status_code == 403


def test_without_a_link_the_result_follows_auth_mode(clock):
    """Unsigned, GET /results/<id> needs a key in keys mode, and another user's job is not found."""
    client = create_app({**FAST, "AUTH_MODE": "keys"}, clock=clock).test_client()
    alice, bob = key_for(client, "alice"), key_for(client, "bob")
    url = urlsplit(completed_url(client, clock, alice))
    assert client.get(url.path).status_code == 401
    assert client.get(url.path, headers=bob).status_code == 404
    with client.get(url.path, headers=alice) as mine:
        assert mine.status_code == 200
    with client.get(f"{url.path}?{url.query}") as signed:
        assert signed.status_code == 200  # the link is the credential, in keys mode too


def test_every_listed_language_tags_results_with_its_language():
    """Each HeyGen name resolves to the ISO 639-2 code of its tag (Cantonese: Chinese, ISO 639-2 has no yue)."""
    for name, tag in LANGUAGES.items():
        language = resolve_language(name)
        expected = "zho" if tag.startswith("yue") else resolve_language(tag).iso639_2
        assert language.known and language.iso639_2 == expected, name


def test_a_link_expires_after_seven_days(client, clock, alice):
    """After seven days the link is refused; a fresh status answer gives a fresh link."""
    url = urlsplit(completed_url(client, clock, alice))
    clock.advance(7 * 24 * 3600 + 1)
    assert client.get(f"{url.path}?{url.query}").status_code == 403
