"""Tests of the package as pip installs it: the wheel's contents, its console scripts and plugin, its dependencies.

The wheel is built from a copy of the checkout (so no build/ or *.egg-info is left in it) with this
interpreter's setuptools and no build isolation, and installed without dependencies into a fresh virtual
environment that sees this interpreter's packages through a .pth file: nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

IGNORED = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                 ".ruff_cache", ".hypothesis", ".env")


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd` with a clean Python environment; fail the test with its output if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, f"{argv}: {done.stdout}\n{done.stderr}"
    return done


def runtime_requirements() -> dict[str, str]:
    """Return {name: pinned version} of the runtime part of requirements.txt (before the '# Tests' line)."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() == "# Tests":
            break
        if line.strip() and not line.startswith("#"):
            name, version = line.split(";")[0].split("==")  # `; sys_platform …`: a marker, not part of the pin
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_project_dependencies_are_the_runtime_requirements() -> None:
    """pyproject's dependencies name exactly the runtime packages of requirements.txt and accept their pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}
    pins = runtime_requirements()
    assert set(declared) == set(pins)
    for name, version in pins.items():
        assert declared[name].specifier.contains(version), (name, version)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Build the wheel from a copy of the checkout and install it into a fresh venv; return (wheel, venv, scripts)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=IGNORED)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", base / "dist",
        source, cwd=base)
    (wheel,) = (base / "dist").glob("*.whl")
    venv = base / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base)
    paths = run(venv / ("Scripts" if os.name == "nt" else "bin") / "python", "-c",
                "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['scripts'])", cwd=base)
    purelib, scripts = map(Path, paths.stdout.split("\n")[:2])
    # The dependencies come from this interpreter's environment instead of the network.
    (purelib / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", scripts / "python", "install", "--quiet", "--no-deps", wheel,
        cwd=base)
    return wheel, venv, scripts


def test_the_wheel_holds_the_modules_and_the_package_not_bench_or_tests(installed: tuple[Path, Path, Path]) -> None:
    """The wheel has client, server, config, jobs and simulator with its subpackages; no bench, no tests."""
    wheel, _, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"client.py", "server.py", "config.py", "jobs.py", "simulator"}
    for module in ("client/sync.py", "client/aio.py", "client/pacing.py", "testing/pytest_plugin.py"):
        assert f"simulator/{module}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "translation-sim = server:main" in text and "translation-client = client:main" in text
    assert "translation_server = simulator.testing.pytest_plugin" in text


def test_the_installed_client_imports_and_runs_from_another_directory(
    installed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Installed, `from client import TranslationClient` works anywhere and `translation-client --help` runs."""
    _, venv, scripts = installed
    probe = run(scripts / "python", "-c",
                "import client, server; from client import TranslationClient, AsyncTranslationClient; "
                "print(client.__file__); print(server.__file__)", cwd=tmp_path)
    assert all(Path(line).is_relative_to(venv) for line in probe.stdout.split())
    for script in ("translation-client", "translation-sim"):
        done = run(scripts / script, "--help", cwd=tmp_path)
        assert "usage:" in done.stdout
    assert "Exit codes" in run(scripts / "translation-client", "--help", cwd=tmp_path).stdout
    missing = subprocess.run([scripts / "python", "-c", "import bench"], cwd=tmp_path, capture_output=True, check=False)
    assert missing.returncode != 0
