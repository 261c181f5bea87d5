"""A pytest plugin for people who write code against the translation API: a real simulator per test.

Installed with the package (entry point `pytest11`), so the fixture is there in any project that has it:

    import pytest

    @pytest.mark.translation_server(settings={"TRANSLATION_DELAY": 0.5, "ERROR_RATE": 0})
    def test_my_code_waits_for_the_translation(translation_server):
        job_id = my_code.submit_video(translation_server.url, "https://example.com/talk.mp4")
        assert translation_server.admin.wait_for_completion(job_id, timeout=10).status == "completed"

`translation_server` starts `python server.py` (`simulator.testing.ServerProcess`) on a free port (PORT=0;
the URL comes from
the `Serving on http://HOST:PORT` line the server prints when it is ready), in an empty working directory
(no `.env` is read), with the settings of the `translation_server` marker, or of indirect parametrization
(`@pytest.mark.parametrize("translation_server", [{...}], indirect=True)`), over the server's defaults.
It yields a `TranslationServer` — `.url`, `.admin_token`, `.admin` (an admin TranslationClient),
`.client(user_id=...)` — and stops it with SIGTERM at the end of the test. For a server shared by a
module or a session, use `start_translation_server(settings)` in a fixture of that scope, and
`server.reset()` at the start of each test.

The testing controls are there too: `server.advance(3600)` moves a manual clock (settings
`{"CLOCK": "manual"}`) an hour on, running everything that falls due; `server.clock()` reads it;
`server.reset()` leaves the server as freshly started; `server.requests(path=...)` and
`server.count_requests(path=...)` read the request journal, to verify what a client sent.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from simulator.client import TranslationClient
from simulator.testing.process import ServerProcess

MARKER = "translation_server"
READY_PREFIX = "Serving on "


class TranslationServer:
    """A simulator running in a subprocess: its URL and admin token, an admin client, and clients on demand."""

    def __init__(self, settings: Mapping[str, Any] | None = None, *, workdir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = 20.0) -> None:
        self.settings = {str(k): v for k, v in (settings or {}).items()}
        self.admin_token = str(self.settings.setdefault("ADMIN_TOKEN", secrets.token_urlsafe(16)))
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="translation-server-"))
        self.log_path = self.workdir / "server.log"
        self.url = ""
        self.process: subprocess.Popen[str] | None = None  # the server's process, once started
        self._server: ServerProcess | None = None
        self._clients: list[TranslationClient] = []
        self._startup_timeout = startup_timeout
        self._admin: TranslationClient | None = None

    # ---------------------------------------------------------------- life

    def start(self) -> TranslationServer:
        """Start the server and wait for its `Serving on` line; raise RuntimeError (with its log) if it fails."""
        with open(self.log_path, "w", encoding="utf-8") as log:
            self._server = ServerProcess({"HOST": "127.0.0.1", **self.settings}, cwd=self.workdir, stderr=log)
            try:
                self._server.start(self._startup_timeout)
            except RuntimeError as e:
                log_text = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"translation server did not start ({e}); its log:\n{log_text}") from e
        self.process = self._server.process
        self.url = self._server.url
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """Close the clients, stop the server with SIGTERM (kill after `timeout` s); return its exit code."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        self._admin = None
        code = self._server.stop(timeout) if self._server is not None else None
        self._server = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    def __enter__(self) -> TranslationServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- clients

    @property
    def admin(self) -> TranslationClient:
        """Return the admin client (user id `admin`, the admin token), made on first use."""
        if self._admin is None:
            self._admin = self.client(user_id="admin", admin_token=self.admin_token)
        return self._admin

    def client(self, user_id: str | None = None, **options: Any) -> TranslationClient:
        """Return a new TranslationClient of this server acting as `user_id` (closed when the server stops)."""
        client = TranslationClient(self.url, user_id=user_id, **options)
        self._clients.append(client)
        return client

    # ---------------------------------------------------------------- controls

    def advance(self, seconds: float) -> dict[str, Any]:
        """Move the server's manual clock (CLOCK=manual) `seconds` on, running every event due; return the clock."""
        return self.admin.advance_clock(seconds)

    def clock(self) -> dict[str, Any]:
        """Return the server's clock: its kind, the simulated `now` and when the next event is due."""
        return self.admin.get_clock()

    def reset(self, *, keep_config: bool = False) -> dict[str, Any]:
        """Leave the server as freshly started: no jobs, keys, rate-limit windows or journal; start-up settings."""
        return self.admin.reset(keep_config=keep_config)

    def requests(self, **filters: Any) -> list[dict[str, Any]]:
        """Return the requests the server recorded, oldest first (filters: path, method, status, user_id, since,
        limit)."""
        return self.admin.request_journal(**filters)

    def count_requests(self, **filters: Any) -> int:
        """Return how many recorded requests the filters select (path, method, status, user_id, since)."""
        return self.admin.count_requests(**filters)


def start_translation_server(settings: Mapping[str, Any] | None = None, **options: Any) -> TranslationServer:
    """Start a simulator with `settings` and return it; stop it with `.stop()` (or use it in a `with`)."""
    return TranslationServer(settings, **options).start()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker, so --strict-markers accepts it."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(settings=None, **settings): settings of the simulator the translation_server fixture starts",
    )


@pytest.fixture
def translation_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TranslationServer]:
    """Start a translation simulator for this test (settings from the marker or indirect parameter); stop it after."""
    settings: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(MARKER))):  # the closest marker wins
        settings.update(marker.kwargs.get("settings") or {})
        settings.update({k: v for k, v in marker.kwargs.items() if k != "settings"})
    settings.update(getattr(request, "param", None) or {})
    server = TranslationServer(settings, workdir=tmp_path).start()
    try:
        yield server
    finally:
        server.stop()
