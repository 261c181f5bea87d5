"""The README's curl session runs top to bottom against a real `python server.py`, as a reader would run it.

Every `$ ` command of the console blocks of the "HTTP API" section is run in order with bash. Job ids in a
command are the ones the README showed earlier; each is replaced by the id the real server gave at that
point (ids are matched in the order they appear). Where the README shows an answer, its HTTP status line
and its stable members (status, role, user, code…) must be what the real server answered.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

from simulator.testing import ServerProcess
from tests.conftest import ROOT

#: A fresh server as the README starts it, with attempts shortened and failures off: the outcomes are the ones shown.
SETTINGS = {"ADMIN_TOKEN": "s3cret", "TRANSLATION_DELAY": 2, "ERROR_RATE": 0, "RANDOM_SEED": 1}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
STABLE = ("status", "result", "role", "user_id", "code", "stage", "mode", "already_cancelled", "done", "count",
          "video_url", "target_language", "cancel_reason", "removed_statuses")


def session() -> list[tuple[str, str]]:
    """Return the (command, shown answer) pairs of the HTTP API section's console blocks, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## HTTP API", 1)[1].split("\n## ", 1)[0]
    pairs: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        command, answer = None, []
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                if command is not None:
                    pairs.append((command, "\n".join(answer)))
                command, answer = line[2:], []
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
            else:
                answer.append(line)
            i += 1
        if command is not None:
            pairs.append((command, "\n".join(answer)))
    return pairs


def pairs_of(value: Any) -> list[tuple[str, Any]]:
    """Return every (key, scalar value) pair anywhere in a decoded JSON value."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        for key, member in value.items():
            if isinstance(member, (dict, list)):
                found += pairs_of(member)
            else:
                found.append((key, member))
    elif isinstance(value, list):
        for member in value:
            found += pairs_of(member)
    return found


def shown_pairs(answer: str) -> list[tuple[str, Any]]:
    """Return the stable `"key": scalar` pairs the README shows in an answer."""
    shown = []
    for key, raw in re.findall(r'"(\w+)": ("[^"]*"|true|false|null|-?\d+(?:\.\d+)?)', answer):
        if key in STABLE:
            shown.append((key, json.loads(raw)))
    return shown


def test_the_readme_curl_session_runs_top_to_bottom() -> None:
    """Each README curl command succeeds in order on a fresh server and answers what the README shows."""
    commands = session()
    assert len(commands) >= 15
    ids: dict[str, str] = {}
    with ServerProcess(SETTINGS, cwd=ROOT) as server:
        host = f"127.0.0.1:{server.port}"
        for command, answer in commands:
            runnable = re.sub(UUID, lambda m: ids.get(m.group(0), m.group(0)), command)
            runnable = runnable.replace("localhost:4777", host)
            result = subprocess.run(["bash", "-c", runnable], capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 0, (command, result.stderr)
            out = result.stdout
            status_line = re.match(r"HTTP/1\.1 (\d{3})", answer)
            if status_line:
                assert re.match(rf"HTTP/1\.1 {status_line.group(1)}", out), (command, out[:200])
                out = re.split(r"\r?\n\r?\n", out, maxsplit=1)[-1]
            if answer.lstrip().startswith("{") or status_line:
                body = json.loads(out)
                real = pairs_of(body)
                for pair in shown_pairs(answer):
                    assert pair in real, (command, pair, out[:300])
                for shown_id, real_id in zip(re.findall(rf'"job_id": "({UUID})"', answer),
                                             re.findall(rf'"job_id":"({UUID})"', out), strict=False):
                    ids.setdefault(shown_id, real_id)
            elif answer.strip():
                assert out.split() == answer.split(), (command, out)
