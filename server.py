"""The translation simulator's HTTP server: `python server.py`, or `create_app()` for any WSGI server.

    python server.py [--host H] [--port P] [--store sqlite:///jobs.db | redis://host:port/db] [--workers N]

The code lives in the `simulator` package: `simulator.http` (the app and its blueprints),
`simulator.main` (this command) and `simulator.serve` (how it is served).
"""

from __future__ import annotations

import sys

from simulator.http import create_app
from simulator.main import main

__all__ = ["create_app", "main"]

if __name__ == "__main__":
    sys.exit(main())
