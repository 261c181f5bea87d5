"""Mutation testing of the domain, the settings and the client's pacing (issue 18), one target at a time.

    pip install -r requirements-dev.txt   # mutmut 3.8.1, a developer tool: not in requirements.txt
    python bench/mutation.py           # every target, one after another (about 45 minutes on 2 shared cores)
    python bench/mutation.py pacing    # one target: domain, settings or pacing
    python bench/mutation.py --report  # only print the table of the last results
    python bench/mutation.py domain --survivors  # run again only the target's unlisted mutants not caught last time

mutmut reads `[tool.mutmut]` in pyproject.toml: it copies the package into `mutants/`, mutates the targets'
modules, records which of the fast tests (the list there) reach each function, and then runs each mutant
against only those tests. This script runs it at a lower priority (`nice`), for one target at a time, and
prints Markdown tables per target and per module: killed (a test failed), timed out (counted as caught), not
caught, and the survivors docs/mutation-equivalents.md lists (equivalent mutants, and code that runs only at
import, which mutmut's runner cannot reach), which the score leaves out and the raw score does not.

Like the other benchmarks it is never part of the test run's pass/fail; the figures go into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "docs" / "mutation-equivalents.md"
MUTMUT_VERSION = "3.8.1"

#: Each target and the mutant names (globs over module paths) that belong to it.
TARGETS = {
    "domain": ("simulator.domain.*", "simulator.feed.*", "simulator.store.memory.*"),
    "settings": ("simulator.settings.*",),
    "pacing": ("simulator.client.pacing.*", "simulator.client.waiting.*"),
}
CAUGHT = ("killed", "timeout", "segfault")
RESULT_LINE = re.compile(r"^\s*(?P<name>[\w.ǁ]+__mutmut_\d+): (?P<status>.+)$")
NAME_IN_TEXT = re.compile(r"`(?P<name>simulator\.[\w.ǁ]+__mutmut_\d+)`")


def mutmut(*args: str) -> subprocess.CompletedProcess[str]:
    """Run mutmut in the project's root at a lower priority; return what it printed."""
    executable = shutil.which("mutmut")
    if executable is None:
        sys.exit(f"mutmut is not installed: pip install -r requirements-dev.txt (mutmut=={MUTMUT_VERSION})")
    return subprocess.run(["nice", "-n", "10", executable, *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)


def target_of(name: str) -> str | None:
    """Return the target a mutant belongs to (None: not one of ours)."""
    for target, patterns in TARGETS.items():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return target
    return None


def excluded() -> dict[str, str]:
    """Return the mutants docs/mutation-equivalents.md lists, each with its section (what kind of exclusion)."""
    if not EQUIVALENTS.exists():
        return {}
    listed: dict[str, str] = {}
    section = ""
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        for m in NAME_IN_TEXT.finditer(line):
            listed[m["name"]] = section
    return listed


def results() -> dict[str, str]:
    """Return every mutant's status from mutmut's last results."""
    out = mutmut("results", "--all", "true")
    return {m["name"]: m["status"] for line in out.stdout.splitlines() if (m := RESULT_LINE.match(line))}


def row(label: str, statuses: dict[str, str], listed: dict[str, str], took: str = "") -> str:
    """Return one table row: counts, the listed survivors left out, the score of the rest, and the raw score."""
    counts = Counter(statuses.values())
    caught = sum(counts[s] for s in CAUGHT)
    left_out = Counter("import" if "import" in listed[name] else "equivalent"
                       for name, status in statuses.items() if name in listed and status not in CAUGHT)
    scored = len(statuses) - left_out.total()
    score = 100.0 * caught / scored if scored else 100.0
    raw = 100.0 * caught / len(statuses) if statuses else 100.0
    return (f"| {label} | {len(statuses)} | {counts['killed']} | {counts['timeout']} | "
            f"{len(statuses) - caught - left_out.total()} | {left_out['equivalent']} | {left_out['import']} | "
            f"**{score:.1f} %** | {raw:.1f} % |{took}")


def report(seconds: dict[str, float]) -> str:
    """Return Markdown tables of the last results per target and per module, and the survivors not listed."""
    statuses = results()
    listed = excluded()
    header = "| mutants | killed | timed out | not caught | equivalent | runs at import | score | raw score |"
    targets = [f"| target {header} run time |", "|---|" + "--:|" * 9]
    modules = [f"| module {header}", "|---|" + "--:|" * 8]
    notes: list[str] = []
    for target in TARGETS:
        mine = {name: status for name, status in statuses.items() if target_of(name) == target}
        if not mine or any(status == "not checked" for status in mine.values()):
            continue
        took = f" {seconds[target]:.0f} s |" if target in seconds else " — |"
        targets.append(row(target, mine, listed, took))
        for module in sorted({name.rsplit(".", 1)[0] for name in mine}):
            of_module = {name: status for name, status in mine.items() if name.rsplit(".", 1)[0] == module}
            modules.append(row(f"`{module}`", of_module, listed))
        notes += [f"- {mine[name]} `{name}`" for name in sorted(mine)
                  if mine[name] not in CAUGHT and name not in listed]
        notes += [f"- listed but caught now (take it off the list) `{name}`" for name in sorted(mine)
                  if name in listed and mine[name] in CAUGHT]
        prefixes = tuple(pattern[:-1] for pattern in TARGETS[target])
        notes += [f"- listed but no such mutant (renumbered? check the list) `{name}`" for name in sorted(listed)
                  if name.startswith(prefixes) and name not in mine]
    text = "\n".join(targets) + "\n\n" + "\n".join(modules)
    if notes:
        text += "\n\nNot caught and not listed (`mutmut show NAME` shows the change):\n" + "\n".join(notes)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help=f"targets to run: {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first (a clean copy and clean stats)")
    parser.add_argument("--report", action="store_true", help="run nothing, print the table of the last results")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only the mutants the last run did not catch and the list does not name "
                             "(after adding tests); the others keep their result, since tests were only added")
    args = parser.parse_args()
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target {', '.join(sorted(unknown))}; choose from {', '.join(TARGETS)}")
    seconds: dict[str, float] = {}
    if not args.report:
        if args.fresh:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        for target in args.targets or TARGETS:
            started = time.monotonic()
            names = TARGETS[target]
            if args.survivors:
                listed = excluded()
                names = tuple(sorted(name for name, status in results().items()
                                     if target_of(name) == target and status not in CAUGHT and name not in listed))
                if not names:
                    continue
            run = mutmut("run", "--max-children", str(args.jobs), *names)
            seconds[target] = time.monotonic() - started
            if run.returncode != 0:
                print(run.stdout[-3000:] + run.stderr[-3000:], file=sys.stderr)
                print(f"mutmut run failed for {target} (exit {run.returncode})", file=sys.stderr)
                return 1
            print(f"{target}: {seconds[target]:.0f} s", file=sys.stderr)
    print(report(seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
