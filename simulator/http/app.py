"""The app factory: settings, store, engine, extensions, blueprints — and the hooks every answer goes through."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request

from simulator import settings as settings_module
from simulator.auth.keys import KeyRing, load_keys_file
from simulator.auth.throttle import FailureThrottle
from simulator.clock import Clock, system_clock
from simulator.domain import JobEngine
from simulator.heygen.replays import ReplayGate
from simulator.heygen.results import ResultLinks
from simulator.heygen.service import HeyGenService
from simulator.http import errors, faults, identity
from simulator.http.context import Simulator, sim
from simulator.http.errors import MAX_BODY_BYTES
from simulator.http.faults import FaultInjector
from simulator.http.limits import make_limiter
from simulator.http.parsing import user_id
from simulator.http.views import admin, apikeys, docs, files, heygen, jobs, ops, submissions, webhooks
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
    (`simulator.ticker.Ticker`) that makes jobs finish when nobody asks; without one, every request
    catches up on what fell due. `store` defaults to the one the STORE setting names.
    """
    settings = _settings_from(config)
    app = Flask(__name__, static_folder=None)  # no static files: without this Flask routes /static/<path>
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    clock = clock or system_clock()
    engine = JobEngine(RuntimeConfig(settings), store=store or open_store(settings.STORE), clock=clock)
    faults.init_app(app)  # before the limiter's own hook: a fault "before the work" costs no rate-limit hit
    identity.init_app(app)  # before the limiter too: the hourly limit is keyed on the key's user
    limiter = make_limiter(app, user_id)
    seed = None if settings.RANDOM_SEED is None else settings.RANDOM_SEED + 1
    keys = _key_ring(settings, engine, clock)
    with engine.store.transaction():
        links = ResultLinks(engine.store.secret("result-links"), clock)
    service = HeyGenService(engine, links, ReplayGate(engine.store, clock))
    hooks = _webhooks(settings, engine, links, clock)
    app.extensions["simulator"] = Simulator(settings, engine, limiter, FaultInjector(seed), keys=keys,
                                            auth_failures=FailureThrottle(clock), heygen=service, webhooks=hooks)
    app.before_request(_start_timer)
    app.after_request(_finish)
    app.after_request(faults.inject_after)  # registered after `_finish`, so it runs before it
    errors.init_app(app)
    for blueprint in (submissions.bp, jobs.bp, admin.bp, ops.bp, docs.bp, apikeys.bp, heygen.bp, files.bp,
                      webhooks.bp):
        app.register_blueprint(blueprint)
    # One hourly window of free submissions per user, whichever route they come by.
    limiter.shared_limit(submissions.hourly_limit, exempt_when=submissions.not_counted, scope="free-submissions")(
        submissions.bp
    )
    limiter.shared_limit(submissions.hourly_limit, exempt_when=heygen.not_counted, scope="free-submissions",
                         cost=heygen.submission_cost)(heygen.bp)
    return app


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
    fallback = settings.PUBLIC_URL or f"http://{settings.HOST}:{settings.PORT}"

    def result_url(job: Any) -> str:
        return links.url(settings.PUBLIC_URL or (job.meta or {}).get("base_url") or fallback, job.job_id)

    engine.observers.append(Outbox(engine.store, result_url, doorbell))
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


def _start_timer() -> None:
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    """Add the rate-limit and safety headers, and write the access log line."""
    if request.method == "OPTIONS" and response.status_code == 200 and not response.get_data():
        response.status_code = 204  # Flask's automatic OPTIONS answer: only the Allow header matters
        response.headers.pop("Content-Type", None)
    current = sim().limiter.current_limit
    if current is not None:
        response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(current.remaining)
        response.headers["X-RateLimit-Reset"] = str(current.reset_at)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-store")
    elapsed_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    log.info(
        '%s "%s %s" %s %.1fms',
        request.remote_addr,
        request.method,
        request.full_path.rstrip("?"),
        response.status_code,
        elapsed_ms,
    )
    return response
