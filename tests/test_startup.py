"""Starting `python server.py`: a port that is taken stops it with one line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import ROOT


def test_a_busy_port_stops_the_server_with_one_line_naming_it_and_exit_2(tmp_path) -> None:
    """Another program listening on the port: one line on stderr naming the port, exit 2, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--port", str(port)], cwd=tmp_path,
                                env={"PATH": "", "ADMIN_TOKEN": "t"}, capture_output=True, text=True, timeout=30,
                                check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "Traceback" not in result.stderr
