"""The package's seams hold: the domain, stores and change feed load without Flask, dotenv or requests."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

WEB = ("flask", "werkzeug", "flask_limiter", "dotenv", "requests", "orjson")


def test_importing_the_domain_loads_no_web_or_dotenv_module() -> None:
    """`import simulator` and its domain, stores and feed leave Flask, Werkzeug, dotenv and requests unloaded."""
    code = (
        "import sys, simulator, simulator.domain, simulator.store, simulator.store.sqlite, simulator.feed, "
        "simulator.settings, jobs, config\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def imports_of(path: Path) -> set[str]:
    """Return the top-level names of every module a file imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_domain_never_imports_the_http_layer_or_a_web_library() -> None:
    """No module of simulator/domain imports simulator.http, simulator.serve or a web library."""
    for path in (ROOT / "simulator" / "domain").glob("*.py"):
        for name in imports_of(path):
            assert not name.startswith(("simulator.http", "simulator.serve", "simulator.main")), (path, name)
            assert name.split(".")[0] not in WEB, (path, name)


def test_top_level_modules_are_thin_entry_points() -> None:
    """server.py, jobs.py and config.py only re-export the package (a few dozen lines each)."""
    for name in ("server.py", "jobs.py", "config.py"):
        assert len((ROOT / name).read_text(encoding="utf-8").splitlines()) < 40, name


def test_the_auth_heygen_and_webhook_packages_never_import_flask() -> None:
    """simulator/auth, simulator/heygen and simulator/webhooks hold the rules; Flask stays in simulator/http."""
    for package in ("auth", "heygen", "webhooks"):
        for path in (ROOT / "simulator" / package).glob("*.py"):
            for name in imports_of(path):
                assert not name.startswith(("simulator.http", "simulator.serve", "simulator.main")), (path, name)
                assert name.split(".")[0] not in ("flask", "werkzeug", "flask_limiter"), (path, name)
