"""The app factory: settings, store, engine, extensions, blueprints — and the hooks every answer goes through."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, request

from simulator import settings as settings_module
from simulator.auth.keys import KeyRing, load_keys_file
from simulator.auth.throttle import FailureThrottle
from simulator.clock import Clock, make_clock
from simulator.domain import JobEngine
from simulator.heygen.replays import ReplayGate
from simulator.heygen.service import HeyGenService
from simulator.http import bodies, cors, delays, errors, faults, identity, journal
from simulator.http.accesslog import log_access
from simulator.http.context import Simulator, derived_seed
from simulator.http.errors import MAX_BODY_BYTES
from simulator.http.faults import FaultInjector
from simulator.http.limits import HourlyLimit
from simulator.http.parsing import user_id
from simulator.http.views import (
    admin,
    apikeys,
    control,
    dashboard,
    docs,
    events,
    heygen,
    jobs,
    media,
    metrics,
    ops,
    submissions,
    webhooks,
)
from simulator.jobfiles import JobFiles
from simulator.links import ResultLinks
from simulator.paths import openapi_template
from simulator.settings import ConfigError, RuntimeConfig, Settings
from simulator.store import Store, open_store
from simulator.webhooks.events import Doorbell, Outbox
from simulator.webhooks.service import WebhookService
from simulator.webhooks.signing import derived_secret

log = logging.getLogger("server")


def create_app(
    config: Settings | Mapping[str, Any] | None = None, *, clock: Clock | None = None, store: Store | None = None
) -> Flask:
    """Build an app: settings (None: environment and .env; a mapping: defaults plus it), store, engine, routes.

    Nothing is shared between apps and no thread is started: whoever serves the app runs the ticker
    (`simulator.ticker.Ticker`) that makes jobs finish when nobody asks, and the result worker
    (`simulator.jobfiles.ResultWorker`) that makes results as jobs complete; without them, every request
    catches up on what fell due, and a result is made when it is first downloaded. `store` defaults to the
    one the STORE setting names.
    """
    settings = _settings_from(config)
    app = Flask(__name__, static_folder=None)  # no static files: without this Flask routes /static/<path>
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    store = store or open_store(settings.STORE)
    clock = clock or make_clock(settings.CLOCK)
    engine = JobEngine(RuntimeConfig(settings), store=store, clock=clock)
    app.extensions["job_files"] = JobFiles(engine, settings.DATA_DIR)  # the folder is opened on first use
    journal.init_app(app)  # first: it sees every request arrive and records it after every other hook
    bodies.init_app(app)  # next: a route's own body limit is set before anything reads the body
    faults.init_app(app)  # before authentication: a fault "before the work" costs no failed-key count
    identity.init_app(app)  # X-Api-Key: who is asking, before any view (the hourly limit is keyed on them)
    hourly_limit = HourlyLimit(user_id, submissions.hourly_limit, engine.now, **_shared_limit_storage(engine))
    keys, links, hooks = _records(settings, engine, clock)
    service = HeyGenService(engine, links, ReplayGate(engine.store, clock))
    app.extensions["simulator"] = Simulator(settings, engine, hourly_limit,
                                            FaultInjector(derived_seed(settings.RANDOM_SEED, 1)), keys=keys,
                                            auth_failures=FailureThrottle(clock), heygen=service, webhooks=hooks,
                                            links=links)
    app.before_request(_start_timer)
    app.after_request(_finish)
    delays.init_app(app)  # RESPONSE_DELAY: runs before `_finish`, so the access log's time includes it
    cors.init_app(app)  # CORS_ORIGINS: on every answer, errors and injected faults included
    errors.init_app(app)
    for blueprint in (submissions.bp, jobs.bp, admin.bp, control.bp, ops.bp, docs.bp, media.bp, events.bp, metrics.bp,
                      dashboard.bp, apikeys.bp, heygen.bp, webhooks.bp):
        app.register_blueprint(blueprint)
    return app


def _shared_limit_storage(engine: JobEngine) -> dict[str, str]:
    """Return where the hourly limit is counted: beside the jobs when several processes share them ({}: in memory).

    A shared store (Redis) keeps the windows in the same Redis, so the limit is one count for every process;
    they are then timed by the real clock, so with CLOCK=manual (one process only: see Storage) the windows
    stay in memory on the simulated clock. With a shared store, the runtime settings other processes changed
    apply from the start too.
    """
    store = engine.store
    if not store.shared:
        return {}
    from simulator.cluster import apply_stored_settings

    apply_stored_settings(engine, store.stored_settings())  # type: ignore[attr-defined]
    if engine.manual_clock:
        return {}
    return {"storage_uri": store.url, "key_prefix": f"{{{store.prefix}}}:limits"}  # type: ignore[attr-defined]


def _records(
    settings: Settings, engine: JobEngine, clock: Clock
) -> tuple[KeyRing, ResultLinks, WebhookService]:
    """Return the API keys, the result links and the webhook service, kept beside the jobs in the store.

    Every store keeps them; a shared one (Redis) for every process, so a key issued by one process is valid on
    all, links signed by one are verified by all (the store's secret "result-links" is made once), and a
    delivery filed by one is sent once, by whichever process claims it first.
    """
    keys = _key_ring(settings, engine, clock)
    with engine.store.transaction():
        links = ResultLinks(engine.store.secret("result-links"), clock)
    return keys, links, _webhooks(settings, engine, links, clock)


def _key_ring(settings: Settings, engine: JobEngine, clock: Clock) -> KeyRing:
    """Return the app's API keys, with those of API_KEYS_FILE created (ConfigError when the file is wrong)."""
    keys = KeyRing(engine.store, clock)
    if settings.API_KEYS_FILE:
        try:
            keys.seed(load_keys_file(settings.API_KEYS_FILE))
        except ValueError as e:
            raise ConfigError({"API_KEYS_FILE": str(e)}) from None
    return keys


def _webhooks(settings: Settings, engine: JobEngine, links: ResultLinks, clock: Clock) -> WebhookService:
    """Return the webhook service, its outbox observing the engine (deliveries are written with the transition).

    No thread is started: `python server.py` runs the deliverer (`simulator.webhooks.deliverer.Deliverer`).
    """
    doorbell = Doorbell()
    fallback = f"http://{settings.HOST}:{settings.PORT}"

    def result_url(job: Any) -> str:
        return links.url(settings.PUBLIC_URL or (job.meta or {}).get("base_url") or fallback, job.job_id)

    engine.observe_in_transaction(Outbox(engine.store, result_url, doorbell))
    service = WebhookService(engine.store, engine.config, clock, doorbell, engine.advance)
    if settings.WEBHOOK_SECRET:
        service.callback_secret, service.callback_secret_generated = settings.WEBHOOK_SECRET, False
    else:
        with engine.store.transaction():
            service.callback_secret = derived_secret(engine.store.secret("webhook-callbacks"))
        service.callback_secret_generated = True
    return service


def _settings_from(config: Settings | Mapping[str, Any] | None) -> Settings:
    if config is None:
        settings = settings_module.load()
    elif isinstance(config, Settings):
        settings = config
    else:
        settings = settings_module.from_mapping(config)
    return settings.with_admin_token()


STARTED = "simulator.started"  # the environ key of the time a request reached the app


def _start_timer() -> None:
    request.environ[STARTED] = time.perf_counter()


def _finish(response: Response) -> Response:
    """Add the safety headers, count the request in the metrics, write the access log line (secrets redacted)."""
    req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup, not one per use
    method = req.method
    status = response.status_code
    headers = response.headers
    if method == "OPTIONS" and status == 200 and not response.get_data():
        status = response.status_code = 204  # Flask's automatic OPTIONS answer: only the Allow header matters
        headers.pop("Content-Type", None)
    headers["X-Content-Type-Options"] = "nosniff"
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    environ = req.environ
    elapsed = time.perf_counter() - environ.get(STARTED, time.perf_counter())
    rule = req.url_rule  # routes named as the journal names them: /status/{job_id}
    current_app.extensions["simulator"].metrics.observe_request(
        openapi_template(rule.rule) if rule is not None else None, method, status, elapsed)
    if log.isEnabledFor(logging.INFO):
        log_access(environ.get("REMOTE_ADDR"), method, req.path, environ.get("QUERY_STRING", ""), status, elapsed)
    return response
