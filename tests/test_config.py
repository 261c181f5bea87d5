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
    assert runtime.initial is before  # what it started with, whatever changed since


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
    assert set(KEYS) - set(RUNTIME_KEYS) == {
        "ADMIN_TOKEN", "METRICS_TOKEN", "RANDOM_SEED", "STORE", "CLOCK", "DATA_DIR", "HOST", "PORT", "THREADS",
        "PROCESSES", "API_KEYS_FILE", "WEBHOOK_SECRET", "WEBHOOK_WORKERS", "PUBLIC_URL"}


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


@pytest.mark.parametrize(("key", "value"), [("HOST", ""), ("STORE", ""), ("HOST", 5), ("STORE", None),
                                            ("PROCESSING_MODE", ""), ("PROCESSING_MODE", 1)])
def test_string_keys_refuse_empty_and_non_string_values(key: str, value: object) -> None:
    """A string setting given empty text, a number or null is refused with what it allows, naming the key."""
    with pytest.raises(ConfigError) as caught:
        config.from_mapping({key: value})
    assert set(caught.value.errors) == {key}
    assert "must be " in caught.value.errors[key] and repr(value) in caught.value.errors[key]


def test_runtime_string_keys_refuse_non_strings() -> None:
    """POST /config's PROCESSING_MODE must be one of its choices as a string, not a number or empty."""
    for value in (1, "", None, "Auto"):
        with pytest.raises(ConfigError) as caught:
            Settings().updated({"PROCESSING_MODE": value})
        assert "one of 'auto', 'manual'" in caught.value.errors["PROCESSING_MODE"]


@pytest.mark.parametrize("text", ["", "   "])
def test_optional_keys_given_as_empty_text_are_unset(text: str) -> None:
    """`RANDOM_SEED=` or `ADMIN_TOKEN=` in the environment or .env means unset, not an error or an empty token."""
    s = config.load(environ={"RANDOM_SEED": text, "ADMIN_TOKEN": text}, dotenv_path=None)
    assert (s.RANDOM_SEED, s.ADMIN_TOKEN) == (None, None)
    assert s.with_admin_token().admin_token_generated


def test_required_string_keys_given_as_empty_text_are_refused() -> None:
    """`HOST=` is not unset: HOST must be a non-empty string, and the error says so."""
    with pytest.raises(ConfigError) as caught:
        config.load(environ={"HOST": " "}, dotenv_path=None)
    assert "a non-empty string" in caught.value.errors["HOST"]


def test_text_values_are_stripped_and_typed() -> None:
    """Environment text is stripped and turned into the key's type: integers, numbers, strings."""
    s = config.load(environ={"WORKERS": " 4 ", "ERROR_RATE": "0.25\n", "HOST": " localhost ", "RANDOM_SEED": "0"},
                    dotenv_path=None)
    assert (s.WORKERS, s.ERROR_RATE, s.HOST, s.RANDOM_SEED) == (4, 0.25, "localhost", 0)
    assert isinstance(s.WORKERS, int) and isinstance(s.ERROR_RATE, float)


def test_numbers_given_as_strings_to_from_mapping_are_parsed() -> None:
    """from_mapping takes typed values or the environment's text alike: "3" is the integer 3, "0.5" the number 0.5."""
    s = config.from_mapping({"WORKERS": "3", "ERROR_RATE": "0.5", "TRANSLATION_DELAY": 2, "JOB_TTL": "60"})
    assert (s.WORKERS, s.ERROR_RATE, s.TRANSLATION_DELAY, s.JOB_TTL) == (3, 0.5, 2.0, 60.0)
    assert isinstance(s.TRANSLATION_DELAY, float)
    with pytest.raises(ConfigError) as caught:
        config.from_mapping({"WORKERS": "3.5", "ERROR_RATE": "2"})
    assert set(caught.value.errors) == {"WORKERS", "ERROR_RATE"}


def test_from_mapping_reports_every_invalid_key_not_only_the_first_unknown() -> None:
    """Unknown, retired and invalid keys are all reported together, whatever their order."""
    with pytest.raises(ConfigError) as caught:
        config.from_mapping({"NOPE": 1, "STATE_FILE": "x.json", "WORKERS": 0, "ERROR_RATE": 0.5, "PORT": "http"})
    assert set(caught.value.errors) == {"NOPE", "STATE_FILE", "WORKERS", "PORT"}
    assert caught.value.errors["NOPE"] == "unknown setting"
    assert "STORE=sqlite:///" in caught.value.errors["STATE_FILE"]


def test_load_reports_a_retired_key_with_the_invalid_ones() -> None:
    """A retired key in the environment is reported with what replaced it, beside every invalid key."""
    with pytest.raises(ConfigError) as caught:
        config.load(environ={"STATE_FILE": "jobs.json", "WORKERS": "0", "PORT": "x"}, dotenv_path=None)
    assert set(caught.value.errors) == {"STATE_FILE", "WORKERS", "PORT"}
    assert "STORE=sqlite:///" in caught.value.errors["STATE_FILE"]


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("TRANSLATION_DELAY", 0, True), ("TRANSLATION_DELAY", 86400, True), ("TRANSLATION_DELAY", 86400.5, False),
        ("PREMIUM_DELAY_FACTOR", 0, False), ("PREMIUM_DELAY_FACTOR", 1e-9, True), ("PREMIUM_DELAY_FACTOR", 1, True),
        ("DELAY_JITTER", 0, True), ("DELAY_JITTER", 0.999, True), ("DELAY_JITTER", 1, False),
        ("WORKERS", 1, True), ("WORKERS", 0, False), ("WORKERS", 10_000, True), ("WORKERS", 10_001, False),
        ("ERROR_RATE", -0.0001, False), ("ERROR_RATE", 1, True), ("MAX_RETRIES", -1, False),
    ],
)
def test_bounds_are_inclusive_unless_declared_open(key: str, value: float, ok: bool) -> None:
    """Each bound lets its own value through when it is closed and refuses it when it is open."""
    if ok:
        assert getattr(Settings().updated({key: value}), key) == value
    else:
        with pytest.raises(ConfigError) as caught:
            Settings().updated({key: value})
        assert KEYS[key].allowed() in caught.value.errors[key]


def test_allowed_describes_each_kind_of_bound() -> None:
    """The allowed-values text shows closed and open ends, one-sided bounds, choices and strings."""
    assert KEYS["PREMIUM_DELAY_FACTOR"].allowed() == "a number in (0, 1]"
    assert KEYS["DELAY_JITTER"].allowed() == "a number in [0, 1)"
    assert KEYS["WORKERS"].allowed() == "an integer in [1, 10000]"
    assert KEYS["PROCESSING_MODE"].allowed() == "one of 'auto', 'manual'"
    assert KEYS["HOST"].allowed() == "a non-empty string"
    assert settings.Key("X", float, 1.0, "simulation", "doc", low=0.5).allowed() == "a number ≥ 0.5"
    assert settings.Key("X", int, 1, "simulation", "doc", low=0, low_open=True).allowed() == "an integer > 0"
    assert settings.Key("X", float, 1.0, "simulation", "doc").allowed() == "a number"


def test_from_mapping_reads_text_as_the_environment_does() -> None:
    """Text in a mapping means what it means in the environment: stripped, and empty for an optional key is unset."""
    text = {"ADMIN_TOKEN": "", "RANDOM_SEED": "", "HOST": " localhost ", "PROCESSING_MODE": "manual"}
    assert config.from_mapping(text) == config.load(environ=text, dotenv_path=None)
    assert config.from_mapping({"ADMIN_TOKEN": " "}).ADMIN_TOKEN is None


def test_load_reads_the_process_environment_and_dotenv_by_default(tmp_path, monkeypatch) -> None:
    """Without arguments load() reads os.environ and the .env of the working directory (the environment wins)."""
    (tmp_path / ".env").write_text("WORKERS=7\nMAX_RETRIES=4\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKERS", "3")
    s = config.load()
    assert (s.WORKERS, s.MAX_RETRIES) == (3, 4)


def test_integers_in_text_keep_every_digit() -> None:
    """A RANDOM_SEED beyond a float's precision is read as the exact integer written."""
    assert config.load(environ={"RANDOM_SEED": "9007199254740993"}, dotenv_path=None).RANDOM_SEED == 9007199254740993


@pytest.mark.parametrize(("key", "value", "message"), [
    ("WORKERS", True, "must be an integer in [1, 10000], got True"),
    ("WORKERS", 2.5, "must be an integer in [1, 10000], got 2.5"),
    ("WORKERS", 0, "must be an integer in [1, 10000], got 0"),
    ("ERROR_RATE", "0.5", "must be a number in [0, 1], got '0.5'"),
    ("TRANSLATION_DELAY", float("inf"), "must be a number in [0, 86400], got inf"),
    ("PROCESSING_MODE", "fast", "must be one of 'auto', 'manual', got 'fast'"),
])
def test_a_refused_value_is_named_with_what_is_allowed(key: str, value: object, message: str) -> None:
    """Each refusal says what the key allows and repeats the value given."""
    with pytest.raises(ConfigError) as caught:
        Settings().updated({key: value})
    assert caught.value.errors == {key: message}


def test_a_config_error_lists_every_key_with_its_message() -> None:
    """The error's text is each key and its message, in the order given, separated by semicolons."""
    with pytest.raises(ConfigError) as caught:
        Settings().updated({"PORT": 1, "NOPE": 1})
    assert str(caught.value) == (
        "PORT: read-only: set it in the environment or .env before start-up; "
        f"NOPE: unknown setting; runtime settings are {', '.join(RUNTIME_KEYS)}"
    )
    assert "TRANSLATION_DELAY, PREMIUM_DELAY_FACTOR" in str(caught.value)


def test_a_generated_admin_token_has_24_random_bytes() -> None:
    """A generated ADMIN_TOKEN is 24 random bytes in URL-safe base64: 32 characters."""
    token = Settings().with_admin_token().ADMIN_TOKEN
    assert token is not None and len(token) == 32
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


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


@pytest.mark.parametrize("url", ["http://127.0.0.1:4777", "https://sim.example/base/"])
def test_public_url_takes_an_http_or_https_base_url(url: str) -> None:
    """An http(s) URL with a host, and a path, is a PUBLIC_URL."""
    assert settings.from_mapping({"PUBLIC_URL": url}).PUBLIC_URL == url


@pytest.mark.parametrize("url", ["ftp://example.com", "http://x/#part", "https://", "http://x/?q=1"])
def test_public_url_refusals_say_what_is_wanted_and_show_the_value(url: str) -> None:
    """A refused PUBLIC_URL is named with an example of what is allowed and the value given."""
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({"PUBLIC_URL": url})
    assert caught.value.errors["PUBLIC_URL"] == (
        f"must be an http(s):// base URL such as http://127.0.0.1:4777, got {url!r}")


def test_cors_origins_are_lower_case_without_a_trailing_slash() -> None:
    """Origins are compared as browsers send them: lower case, no trailing slash, spaces around commas ignored."""
    assert settings.parse_origins("https://App.Example.com:8080/ , http://localhost:3000") == frozenset(
        {"https://app.example.com:8080", "http://localhost:3000"})
    assert settings.parse_origins("*") == frozenset({"*"})
    assert settings.parse_origins("https://SANDBOX/") == frozenset({"https://sandbox"})  # only the slash is cut


@pytest.mark.parametrize("text", ["app.example.com", "ftp://app.example.com", "https://", "https://a.example/path",
                                  "https://a example", "https//a.example", "https://a.example, *x"])
def test_cors_origins_refuse_what_is_not_an_origin(text: str) -> None:
    """Each origin must be `*` or scheme://host[:port] with http or https; the first bad one is named."""
    with pytest.raises(ValueError) as caught:
        settings.parse_origins(text)
    assert str(caught.value).startswith("must be * or origins such as https://app.example.com:8080 separated by "
                                        "commas, got '")
    with pytest.raises(ConfigError) as refused:
        settings.from_mapping({"CORS_ORIGINS": text})
    assert refused.value.errors["CORS_ORIGINS"] == str(caught.value)
