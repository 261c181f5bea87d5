"""The client against dead, slow and foreign servers, and installed from scratch: issue 12's figures, measured.

1. A dead port: `wait_for_completion(timeout=5)` where nothing listens — status requests sent, CPU seconds
   used, wall time (targets: ≤ 40 requests, ≤ 0.3 s CPU).
2. Slow servers, each call with a 4 s deadline: one that sends the headers and then one body byte every 2 s,
   one that sends its headers a byte at a time, one that accepts and never answers — wall time of
   `wait_for_completion`, `translate` and a single `get_status`, sync and async (target: ≤ deadline + 0.5 s).
3. A foreign server (HTML 200) without a deadline: requests until the ProtocolError, and wall time.
4. A fresh virtual environment: `pip install .` of the checkout, then the README's quick start from a
   temporary directory against `translation-sim` — install time, the quick start's output and wall time.

    python bench/client_robustness.py              # everything (about a minute, plus the install)
    python bench/client_robustness.py --no-install # without part 4
    python bench/client_robustness.py --quick      # a smoke run (about 6 s): short deadlines, no install
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import free_port, machine, revision, table  # noqa: E402
from simulator.client import AsyncTranslationClient, TranslationClient  # noqa: E402
from simulator.testing.misbehaving import MisbehavingServer  # noqa: E402

JOB_ID = "00000000-0000-4000-8000-000000000001"
GRACE = 0.5


def measure(call: Callable[[], Any]) -> tuple[str, float, float]:
    """Run `call`; return what came of it (a class name), wall seconds and CPU seconds of this process."""
    wall, cpu = time.monotonic(), time.process_time()
    try:
        outcome = type(call()).__name__
    except Exception as e:
        outcome = type(e).__name__
    return outcome, time.monotonic() - wall, time.process_time() - cpu


def in_loop(make: Callable[[AsyncTranslationClient], Any], url: str, **options: Any) -> Callable[[], Any]:
    """Return a function running `make(client)` with a fresh AsyncTranslationClient on a fresh event loop."""

    async def run() -> Any:
        async with AsyncTranslationClient(url, **options) as tc:
            return await make(tc)

    return lambda: asyncio.run(run())


def dead_port(deadline: float) -> list[list[Any]]:
    """Part 1: rows for the dead port, sync and async."""
    url = f"http://127.0.0.1:{free_port()}"
    rows = []
    with TranslationClient(url) as tc:
        outcome, wall, cpu = measure(lambda: tc.wait_for_completion(JOB_ID, timeout=deadline))
        rows.append(["sync", outcome, tc.status_requests, f"{cpu:.3f}", f"{wall:.2f}"])
    counted: dict[str, int] = {}

    async def wait(tc: AsyncTranslationClient) -> Any:
        try:
            return await tc.wait_for_completion(JOB_ID, timeout=deadline)
        finally:
            counted["requests"] = tc.status_requests

    outcome, wall, cpu = measure(in_loop(wait, url))
    rows.append(["async", outcome, counted["requests"], f"{cpu:.3f}", f"{wall:.2f}"])
    return rows


def slow_calls(sync: TranslationClient, url: str, deadline: float) -> list[tuple[str, str, Callable[[], Any]]]:
    """Return the calls measured against one slow server: (client, call, function)."""
    return [
        ("sync", f"wait_for_completion(timeout={deadline:g})",
         lambda: sync.wait_for_completion(JOB_ID, timeout=deadline)),
        ("sync", f"translate(timeout={deadline:g})", lambda: sync.translate(timeout=deadline)),
        ("sync", f"get_status(), request timeout {deadline:g}", lambda: sync.get_status(JOB_ID)),
        ("async", f"wait_for_completion(timeout={deadline:g})",
         in_loop(lambda tc: tc.wait_for_completion(JOB_ID, timeout=deadline), url)),
        ("async", f"translate(timeout={deadline:g})", in_loop(lambda tc: tc.translate(timeout=deadline), url)),
    ]


def slow_servers(deadline: float, interval: float) -> list[list[Any]]:
    """Part 2: rows for each slow server, call and client."""
    rows = []
    for mode in ("trickle-body", "trickle-headers", "silent"):
        with MisbehavingServer(mode, interval=interval) as server, \
                TranslationClient(server.url, timeout=deadline) as sync:
            for client, call, run in slow_calls(sync, server.url, deadline):
                outcome, wall, _ = measure(run)
                rows.append([mode, client, call, outcome, f"{wall:.2f}", "yes" if wall <= deadline + GRACE else "NO"])
    return rows


def foreign_server() -> list[list[Any]]:
    """Part 3: rows for an HTML server, waited for without a deadline."""
    rows = []
    with MisbehavingServer("html") as server:
        with TranslationClient(server.url) as tc:
            outcome, wall, _ = measure(lambda: tc.wait_for_completion(JOB_ID))
        rows.append(["sync", outcome, server.hits, f"{wall * 1000:.1f}"])
        outcome, wall, _ = measure(in_loop(lambda tc: tc.wait_for_completion(JOB_ID), server.url))
        rows.append(["async", outcome, server.hits - rows[0][2], f"{wall * 1000:.1f}"])
    return rows


def quick_start_code(url: str) -> str:
    """Return the README's quick start (its first Python block) pointed at `url`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start with the client", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    if code is None:
        raise RuntimeError("no Python block in the README's quick start")
    return code.group(1).replace("http://127.0.0.1:4777", url)


def fresh_install() -> list[list[Any]]:
    """Part 4: pip install . into a fresh venv, then the README quick start from a temporary directory."""
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        where = Path(tmp)
        started = time.monotonic()
        venv.create(where / "venv", with_pip=True)
        bin_dir = where / "venv" / ("Scripts" if os.name == "nt" else "bin")
        created = time.monotonic() - started
        started = time.monotonic()
        subprocess.run([bin_dir / "python", "-m", "pip", "install", "--quiet", str(ROOT)], cwd=where, check=True)
        installed = time.monotonic() - started
        rows.append(["python -m venv (with pip)", f"{created:.1f}", "ok"])
        rows.append(["pip install . (build isolation, dependencies from the index or its cache)", f"{installed:.1f}",
                     "ok"])
        env = {**os.environ, "PORT": "0", "ADMIN_TOKEN": "bench-admin-token"}
        env.pop("PYTHONPATH", None)
        server = subprocess.Popen([bin_dir / "translation-sim"], cwd=where, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            url = line.removeprefix("Serving on ").strip()
            (where / "quickstart.py").write_text(quick_start_code(url), encoding="utf-8")
            started = time.monotonic()
            done = subprocess.run([bin_dir / "python", "quickstart.py"], cwd=where, env=env, capture_output=True,
                                  text=True, timeout=300, check=False)
            took = time.monotonic() - started
            shown = (done.stdout.strip() or done.stderr.strip().splitlines()[-1])[:80]
            rows.append([f"README quick start from {where} (server defaults)", f"{took:.1f}",
                         f"exit {done.returncode}: {shown}"])
            help_text = subprocess.run([bin_dir / "translation-client", "--help"], cwd=where, capture_output=True,
                                       text=True, check=False)
            rows.append(["translation-client --help", "-", f"exit {help_text.returncode}"])
        finally:
            server.terminate()
            server.wait(timeout=15)
            if server.stdout is not None:
                server.stdout.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: deadlines under 1 s, no install")
    parser.add_argument("--no-install", action="store_true", help="skip the fresh-venv install and quick start")
    args = parser.parse_args(argv)
    dead_deadline, deadline, interval = (0.5, 0.3, 0.1) if args.quick else (5.0, 4.0, 2.0)
    started = time.monotonic()
    dead = dead_port(dead_deadline)
    slow = slow_servers(deadline, interval)
    foreign = foreign_server()
    install = [] if args.quick or args.no_install else fresh_install()
    print(f"# bench/client_robustness.py{' --quick' if args.quick else ''}\n")
    print(f"Machine: {machine()}; {revision()}. Wall time: {time.monotonic() - started:.1f} s.\n")
    print(f"Dead port, `wait_for_completion(timeout={dead_deadline:g})`:\n")
    print(table(["client", "raised", "requests", "CPU s", "wall s"], dead))
    print(f"\nSlow servers (a byte every {interval:g} s where trickling), deadline {deadline:g} s:\n")
    print(table(["server", "client", "call", "raised", "wall s", f"≤ {deadline + GRACE:g} s"], slow, "llllrr"))
    print("\nForeign server (HTML 200), `wait_for_completion()` without a deadline:\n")
    print(table(["client", "raised", "requests", "wall ms"], foreign))
    if install:
        print("\nFresh virtual environment, then the README quick start:\n")
        print(table(["step", "s", "outcome"], install, "lrl"))
    worst_slow = max(float(r[4]) for r in slow)
    verdicts = [
        ["dead port: requests ≤ 40", max(r[2] for r in dead), "yes" if max(r[2] for r in dead) <= 40 else "NO"],
        ["dead port: CPU ≤ 0.3 s", max(r[3] for r in dead), "yes" if max(float(r[3]) for r in dead) <= 0.3 else "NO"],
        [f"slow servers: wall ≤ {deadline + GRACE:g} s", f"{worst_slow:.2f}",
         "yes" if worst_slow <= deadline + GRACE else "NO"],
        ["foreign server: one request, ProtocolError", ", ".join(f"{r[1]} after {r[2]}" for r in foreign),
         "yes" if all(r[1] == "ProtocolError" and r[2] == 1 for r in foreign) else "NO"],
    ]
    print()
    print(table(["target", "figure", "met"], verdicts, "llr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
