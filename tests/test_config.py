"""Tests of config.py: defaults, .env and environment precedence, validation, runtime updates."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

import config
from config import KEYS, RUNTIME_KEYS, ConfigError, RuntimeConfig, Settings
from simulator import settings


def test_defaults_match_the_spec() -> None:
    """With nothing configured every key has SPEC §4's default."""
    s = config.load(environ={}, dotenv_path=None)
    assert (s.TRANSLATION_DELAY, s.PREMIUM_DELAY_FACTOR, s.DELAY_JITTER, s.ERROR_RATE) == (15, 0.5, 0.2, 0.2)
    assert (s.MAX_RETRIES, s.RATE_LIMIT, s.WORKERS, s.PROCESSING_MODE, s.MAX_WAIT) == (3, 5, 2, "auto", 25)
    assert (s.HOST, s.PORT, s.ADMIN_TOKEN, s.RANDOM_SEED) == ("127.0.0.1", 4777, None, None)


def test_environment_wins_over_dotenv(tmp_path) -> None:
    """A key in both .env and the environment takes the environment's value; .env fills the rest."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("WORKERS=7\nERROR_RATE=0.5\n# a comment\nPROCESSING_MODE=manual\n")
    s = config.load(environ={"WORKERS": "3"}, dotenv_path=dotenv)
    assert (s.WORKERS, s.ERROR_RATE, s.PROCESSING_MODE) == (3, 0.5, "manual")


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        ("WORKERS", "0", "[1, 10000]"),
        ("WORKERS", "two", "an integer"),
        ("ERROR_RATE", "1.5", "[0, 1]"),
        ("PREMIUM_DELAY_FACTOR", "0", "(0, 1]"),
        ("DELAY_JITTER", "1", "[0, 1)"),
        ("PROCESSING_MODE", "fast", "'auto', 'manual'"),
        ("TRANSLATION_DELAY", "-1", "[0, 86400]"),
        ("TRANSLATION_DELAY", "nan", "a number"),
        ("PORT", "70000", "[0, 65535]"),
        ("MAX_RETRIES", "2.5", "an integer"),
    ],
)
def test_bad_environment_values_name_the_key(key: str, text: str, message: str) -> None:
    """An invalid value is refused with an error that names the key and what is allowed."""
    with pytest.raises(ConfigError) as caught:
        config.load(environ={key: text}, dotenv_path=None)
    assert key in caught.value.errors
    assert message in caught.value.errors[key]
    assert key in str(caught.value)


def test_every_bad_key_is_reported_at_once() -> None:
    """Several invalid keys are all reported, not only the first."""
    with pytest.raises(ConfigError) as caught:
        config.load(environ={"WORKERS": "0", "ERROR_RATE": "x", "TRANSLATION_DELAY": "5"}, dotenv_path=None)
    assert set(caught.value.errors) == {"WORKERS", "ERROR_RATE"}


def test_admin_token_is_generated_only_when_unset() -> None:
    """An unset ADMIN_TOKEN becomes a random one (different each time); a configured one is kept."""
    first, second = Settings().with_admin_token(), Settings().with_admin_token()
    assert first.admin_token_generated and first.ADMIN_TOKEN and len(first.ADMIN_TOKEN) >= 24
    assert first.ADMIN_TOKEN != second.ADMIN_TOKEN
    kept = Settings(ADMIN_TOKEN="mine").with_admin_token()
    assert (kept.ADMIN_TOKEN, kept.admin_token_generated) == ("mine", False)


def test_public_settings_hide_the_admin_token() -> None:
    """public() lists every key except the secrets ADMIN_TOKEN, METRICS_TOKEN and WEBHOOK_SECRET."""
    secrets = ("ADMIN_TOKEN", "METRICS_TOKEN", "WEBHOOK_SECRET")
    public = Settings(ADMIN_TOKEN="secret", METRICS_TOKEN="hidden", WEBHOOK_SECRET="whsec_hidden").public()
    assert not set(secrets) & set(public)
    assert not {"secret", "hidden", "whsec_hidden"} & set(map(str, public.values()))
    assert set(public) == {k for k in KEYS if k not in secrets}


def test_runtime_update_is_all_or_nothing() -> None:
    """One bad key refuses the whole update and leaves every value as it was."""
    runtime = RuntimeConfig(Settings())
    before = runtime.current
    with pytest.raises(ConfigError) as caught:
        runtime.update({"WORKERS": 4, "ERROR_RATE": 7, "PORT": 1, "NOPE": 1})
    assert set(caught.value.errors) == {"ERROR_RATE", "PORT", "NOPE"}
    assert "read-only" in caught.value.errors["PORT"]
    assert "unknown" in caught.value.errors["NOPE"]
    assert runtime.current is before
    assert runtime.update({"WORKERS": 4, "PROCESSING_MODE": "manual"}).WORKERS == 4
    assert runtime.current.PROCESSING_MODE == "manual"


@pytest.mark.parametrize(("key", "value"), [("WORKERS", True), ("WORKERS", 2.5), ("MAX_RETRIES", "3"),
                                            ("ERROR_RATE", None), ("TRANSLATION_DELAY", float("inf"))])
def test_runtime_update_checks_json_types(key: str, value: object) -> None:
    """Booleans, strings, null, non-integral and infinite numbers are refused for numeric keys."""
    with pytest.raises(ConfigError):
        Settings().updated({key: value})


def test_integral_floats_are_accepted_for_integer_keys() -> None:
    """4.0 from a JSON client is the integer 4."""
    assert Settings().updated({"WORKERS": 4.0}).WORKERS == 4


def test_only_documented_keys_are_runtime() -> None:
    """The process settings (secrets, seed, store, clock, data folder, address, threads, processes, the key file,
    webhook workers, the public URL) stay fixed."""
    assert set(KEYS) - set(RUNTIME_KEYS) == {"ADMIN_TOKEN", "METRICS_TOKEN", "RANDOM_SEED", "STORE", "CLOCK",
                                             "DATA_DIR", "HOST", "PORT", "THREADS", "PROCESSES", "API_KEYS_FILE",
                                             "WEBHOOK_SECRET", "WEBHOOK_WORKERS", "PUBLIC_URL"}


def test_concurrent_updates_never_mix() -> None:
    """Updates from many threads each land whole: WORKERS and MAX_RETRIES always move together."""
    runtime = RuntimeConfig(Settings())

    def hammer(n: int) -> None:
        for _ in range(200):
            runtime.update({"WORKERS": n, "MAX_RETRIES": n})
            current = runtime.current
            assert current.WORKERS == current.MAX_RETRIES

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert runtime.current.WORKERS == runtime.current.MAX_RETRIES


def test_the_readme_table_of_settings_is_the_declarations() -> None:
    """README.md's configuration table is exactly what the declarations make (a new setting needs a README row)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert settings.markdown_table() in readme


def test_settings_are_grouped_simulation_service_process() -> None:
    """The domain's settings, the service's and the process's are separate groups; only process ones are read-only."""
    assert {f.name for f in dataclasses.fields(settings.Simulation)} <= set(RUNTIME_KEYS)
    assert {f.name for f in dataclasses.fields(settings.Service)} <= set(RUNTIME_KEYS)
    assert not {f.name for f in dataclasses.fields(settings.Process)} & set(RUNTIME_KEYS)
    assert isinstance(Settings(), settings.Simulation)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("WEBHOOK_ALLOWED_HOSTS", "not a host!", "not a host name"),
    ("WEBHOOK_ALLOWED_HOSTS", " , ", "at least one"),
    ("WEBHOOK_ALLOWED_HOSTS", "10.0.0.0/33", "not a host name"),
    ("AUTH_MODE", "closed", "one of 'open', 'keys'"),
    ("WEBHOOK_TIMEOUT", 0, "(0, 60]"),
    ("WEBHOOK_RETRY_SCALE", 2, "[0, 1]"),
    ("AUTH_FAILURE_LIMIT", 0, "[1, 1000000]"),
])
def test_the_auth_and_webhook_settings_refuse_bad_values(key: str, value: object, message: str) -> None:
    """A bad auth or webhook setting is refused with a message that says what is allowed."""
    with pytest.raises(ConfigError) as caught:
        Settings().updated({key: value})
    assert message in caught.value.errors[key]


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "http://x/?q=1", "http://"])
def test_public_url_must_be_an_http_base_url(url: str) -> None:
    """PUBLIC_URL must be an http(s) base URL without a query."""
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({"PUBLIC_URL": url})
    assert "PUBLIC_URL" in caught.value.errors
