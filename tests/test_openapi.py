"""The OpenAPI document: valid, complete, served with an offline Swagger UI, and true to the server.

The last tests let schemathesis generate requests from the document (valid and invalid ones, a bounded number
per operation, derandomized, with the admin token) and send them to an app on the fake clock that holds jobs in
every status: one request at a time per operation, then along the document's links (submit, then the status or
the cancelling of that very job). Every answer must be no server error and have a documented status, media
type, headers and body; an undocumented method must be a 405 with Allow. A smaller run with FAULT_RATE on
checks that the injected faults are documented too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
import yaml
from flask import Flask
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_openapi

import config
from jobs import Scenario, Status
from server import create_app
from simulator.http.views.docs import DOCS_ASSETS, OPENAPI_PATH, REDOC_DIR, swagger_ui_path
from tests.conftest import ADMIN_TOKEN, FAST, FakeClock

DOCUMENT = OPENAPI_PATH
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}  # Flask answers them for every route; the document's intro says so
#: How many requests schemathesis generates per operation in its random phase (its example and coverage
#: phases add a bounded number of their own).
MAX_EXAMPLES = 40
#: The longest long-poll in the schemathesis runs, seconds.
FUZZ_MAX_WAIT = 0.02
#: How many chains of linked requests (submit, then status or cancel of that job) the stateful test runs.
STATEFUL_SCENARIOS = 30
#: The API key schemathesis sends where the document asks for one (a premium key, so the hourly limit stays out
#: of the way; the free path is tested in tests/test_heygen.py).
FUZZ_API_KEY = "fuzz-api-key-0000000000000001"


def load_document() -> dict[str, Any]:
    """Return openapi.yaml as data."""
    with DOCUMENT.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve(node: Any, document: dict[str, Any]) -> Any:
    """Return `node` with every local $ref replaced by what it points to (the document has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            return resolve(target, document)
        return {key: resolve(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, document) for item in node]
    return node


def examples_with_schemas(node: Any, where: str = "") -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """Yield (where, example, schema) for every example of a media type, parameter, header or schema."""
    if isinstance(node, dict):
        schema = node.get("schema")
        if isinstance(schema, dict):
            if "example" in node:
                yield where, node["example"], schema
            for name, example in (node.get("examples") or {}).items():
                yield f"{where}/examples/{name}", example["value"], schema
        elif "example" in node and ("type" in node or "allOf" in node):
            yield where, node["example"], node
        for key, value in node.items():
            if key not in ("example", "examples"):
                yield from examples_with_schemas(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from examples_with_schemas(item, f"{where}/{i}")


# ------------------------------------------------------------------------------------ the document


def test_document_is_valid_openapi():
    """openapi.yaml is a valid OpenAPI 3.0 document."""
    document = load_document()
    assert document["openapi"].startswith("3.0.")
    validate_openapi(document)


def test_every_route_is_documented_and_every_documented_operation_exists(app):
    """The Flask routes and the document's operations are the same set of (path, method)."""
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        for method in rule.methods - AUTOMATIC_METHODS
    }
    documented = {
        (path, method)
        for path, item in load_document()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert routes == documented


def test_operation_ids_are_unique():
    """Every operation has its own operationId (Postman and code generators name requests by it)."""
    ids = [op["operationId"] for item in load_document()["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_config_schemas_match_the_settings():
    """Config lists every non-secret setting with its type and bounds; ConfigChange exactly the runtime ones."""
    schemas = load_document()["components"]["schemas"]
    shown, change = schemas["Config"], schemas["ConfigChange"]
    public = [name for name, key in config.KEYS.items() if not key.secret]
    assert list(shown["properties"]) == public
    assert shown["required"] == public
    assert list(change["properties"]) == list(config.RUNTIME_KEYS)
    for name in public:
        key = config.KEYS[name]
        schema = shown["properties"][name]
        kind = {float: "number", int: "integer", str: "string"}[key.kind]
        expected = {"type": kind}
        if key.low is not None:
            expected["minimum"] = key.low
        if key.high is not None:
            expected["maximum"] = key.high
        if key.low_open:
            expected["exclusiveMinimum"] = True
        if key.high_open:
            expected["exclusiveMaximum"] = True
        if key.choices:
            expected["enum"] = list(key.choices)
        if key.optional:
            expected["nullable"] = True
        assert {k: v for k, v in schema.items() if k != "description"} == expected, name
        if key.runtime:
            assert change["properties"][name] == expected, name


def test_every_example_matches_its_schema():
    """Every example in the document is valid against the schema beside it."""
    document = load_document()
    found = list(examples_with_schemas(document["paths"], "#/paths")) + list(
        examples_with_schemas(document["components"], "#/components")
    )
    assert len(found) >= 30
    for where, example, schema in found:
        errors = [e.message for e in OAS30Validator(resolve(schema, document)).iter_errors(example)]
        assert not errors, f"{where}: {errors}"


# ------------------------------------------------------------------------------------ serving it


def test_openapi_yaml_is_served_as_the_file(client):
    """GET /openapi.yaml answers the document's text as application/yaml."""
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.get_data(as_text=True) == DOCUMENT.read_text(encoding="utf-8")


def test_docs_page_loads_swagger_ui_from_this_server_only(client):
    """/docs is an HTML page whose scripts, styles and icons are all this server's own files, no CDN."""
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "SwaggerUIBundle" in page and '"/openapi.yaml"' in page
    assert "validatorUrl: null" in page  # Swagger UI would otherwise send the document to an online validator
    assert not re.search(r"https?:|//[a-z]", page, re.IGNORECASE)  # no absolute or protocol-relative URL
    links = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {link.removeprefix("/docs/") for link in links} == set(DOCS_ASSETS)
    for link in links:
        asset = client.get(link)
        assert asset.status_code == 200, link
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.get_data() == (swagger_ui_path / link.removeprefix("/docs/")).read_bytes()


def test_redoc_page_loads_redoc_from_this_server_only(client):
    """/redoc is an HTML page that loads the vendored ReDoc script from this server and reads /openapi.yaml."""
    response = client.get("/redoc")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'spec-url="/openapi.yaml"' in page
    assert not re.search(r"https?:|//[a-z]", page, re.IGNORECASE)
    (script,) = re.findall(r'src="([^"]+)"', page)
    answer = client.get(script)
    assert answer.status_code == 200 and answer.mimetype == "text/javascript"
    assert answer.get_data() == (REDOC_DIR / "redoc.standalone.js").read_bytes()


def test_try_it_out_calls_the_server_that_serves_the_page():
    """The document's first server is "/", so Swagger UI's Try it out sends requests to the page's own origin."""
    assert load_document()["servers"][0]["url"] == "/"


def test_no_fixed_idempotency_key_is_filled_in_for_try_it_out():
    """The Idempotency-Key parameter has no example: a second Execute with an edited body is not refused."""
    key = load_document()["components"]["parameters"]["IdempotencyKey"]
    assert "example" not in key and "examples" not in key


@pytest.mark.parametrize(
    ("mimetype", "asset"),
    [("text/css", "swagger-ui.css"), ("text/javascript", "swagger-ui-bundle.js"), ("image/png", "favicon-32x32.png")],
)
def test_docs_assets_have_media_types_that_nosniff_accepts(client, mimetype, asset):
    """The stylesheet is text/css and the script text/javascript, so a browser told nosniff uses them."""
    assert client.get(f"/docs/{asset}").mimetype == mimetype


@pytest.mark.parametrize("asset", ["index.html", "swagger-initializer.js", "swagger-ui-bundle.js.map", "nope.js"])
def test_other_package_files_are_not_served(client, asset):
    """Only the files /docs needs are served; the package's demo page (which loads an online example) is not."""
    response = client.get(f"/docs/{asset}")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


# ------------------------------------------------------------------------------------ schemathesis


@dataclass
class Target:
    """The app under test, the fake clock it runs on, and the settings that must hold between requests."""

    app: Flask
    clock: FakeClock
    guarded: dict[str, float | str | None]


def seed_jobs(app: Flask, clock: FakeClock) -> None:
    """Give the engine jobs in every status and stage, so listings show every shape a job can take."""
    engine = app.extensions["simulator"].engine
    wanted = {"pending", "failed", "completed", "permanently_failed"}
    for i in range(40):
        role = "premium" if i % 3 == 0 else "free"
        engine.submit(role, f"user-{i % 3}", video_url=f"https://videos.example/{i}.mp4", target_language="de")
        clock.advance(3)
        if wanted <= {job["status"] for job in engine.jobs()}:
            break
    engine.cancel(engine.jobs(status=Status.PENDING)[-1]["job_id"], "seeded")
    jobs = engine.jobs()
    assert {job["status"] for job in jobs} == wanted | {"cancelled"}
    assert {job["stage"] for job in jobs} == {"queued", "translating", "finished"}


def make_target(fault_rate: float = 0.0) -> Target:
    """Build a fresh app on a fake clock, with jobs in every status, failures, retries and short long-polls.

    Scripted outcomes are on only with injected faults: a generated `simulate.status_faults` makes status
    reads answer 5xx on purpose, which the run that refuses every server error would take for a bug.
    """
    clock = FakeClock()
    # Long-polls, slow faults and response delays hold real seconds even on the fake clock: keep them short.
    guarded: dict[str, float | str | None] = {"MAX_WAIT": FUZZ_MAX_WAIT, "FAULT_RATE": fault_rate, "FAULT_DELAY": 0.0,
                                              "SCENARIOS": "on" if fault_rate else "off", "RESPONSE_DELAY": None,
                                              "AUTH_MODE": "open", "AUTH_FAILURE_LIMIT": 1_000_000}
    app = create_app({**FAST, "ERROR_RATE": 0.5, "MAX_RETRIES": 1, "WORKERS": 1, **guarded}, clock=clock)
    app.extensions["simulator"].keys.seed([{"api_key": FUZZ_API_KEY, "user_id": "fuzz", "role": "premium"}])
    seed_jobs(app, clock)
    if guarded["SCENARIOS"] == "on":
        # The newest job (GET /status without X-User-Id) answers each scripted fault status a few times.
        faults = [{"status": status, "retry_after": 1, "times": 3} for status in (429, 500, 502, 503, 504)]
        app.extensions["simulator"].engine.submit("free", "scripted", simulate=Scenario.parse(
            {"outcomes": ["fail", "succeed"], "status_faults": faults}))
    return Target(app, clock, guarded)


def between_requests(target: Target) -> None:
    """Let simulated time pass, and put back the guarded settings a generated POST /config may have changed."""
    target.clock.advance(2.5)  # jobs start, fail, retry and finish while the requests go on
    engine = target.app.extensions["simulator"].engine
    if any(getattr(engine.settings, name) != value for name, value in target.guarded.items()):
        engine.configure(target.guarded)


def load_schema(*checks: str) -> schemathesis.BaseSchema:
    """Load openapi.yaml for schemathesis: derandomized, bounded, the admin token sent, only `checks` run."""
    return schemathesis.openapi.from_path(
        DOCUMENT,
        config=schemathesis.Config.from_dict(
            {
                "seed": 20270115,
                "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
                "auth": {"openapi": {"adminToken": {"bearer": ADMIN_TOKEN}, "apiKey": {"api_key": FUZZ_API_KEY}}},
                "checks": {"enabled": False, **{name: {"enabled": True} for name in checks}},
            }
        ),
    )


# A raw upload's body is bytes whatever its video/* type: send it as schemathesis sends octet streams.
schemathesis.serializer.alias("video/mp4", "application/octet-stream")

CONFORMANCE = (
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
#: GET /events never ends, so a generated request to it would never be answered; tests/test_events_http.py covers it.
SCHEMA = load_schema("not_a_server_error", "unsupported_method", "allow_header_conformance", *CONFORMANCE).exclude(
    operation_id=["streamEvents"]
)
#: Injected faults are deliberate 5xx: with them on, only conformance to the document is checked.
FAULTY_SCHEMA = load_schema(*CONFORMANCE).include(
    operation_id=["submitTranslation", "getJobStatus", "getNewestStatus", "listJobs", "getQueue", "getConfig"]
)
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)


@pytest.fixture
def target() -> Target:
    return make_target()


@pytest.fixture
def faulty_target() -> Target:
    return make_target(fault_rate=0.5)


@SCHEMA.parametrize()
@SETTINGS
def test_the_server_answers_as_its_document_says(case, target):
    """Generated requests, valid and not, get documented statuses, media types, headers and bodies, never a 5xx."""
    case.call_and_validate(app=target.app)
    between_requests(target)


@FAULTY_SCHEMA.parametrize()
@hypothesis.settings(SETTINGS, max_examples=MAX_EXAMPLES // 4)
def test_injected_faults_answer_as_the_document_says(case, faulty_target):
    """With FAULT_RATE on, the injected 500s and 503s are documented, with their media type, headers and body."""
    case.call_and_validate(app=faulty_target.app)
    between_requests(faulty_target)


class JobWorkflow(SCHEMA.as_state_machine()):  # type: ignore[misc]
    """Chains requests along the document's links (submit, then the status or the cancelling of that job)."""

    def setup(self) -> None:
        self.target = make_target()

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
        return {"app": self.target.app}

    def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
        between_requests(self.target)


TestJobWorkflow = JobWorkflow.TestCase
TestJobWorkflow.settings = hypothesis.settings(
    max_examples=STATEFUL_SCENARIOS,
    stateful_step_count=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
