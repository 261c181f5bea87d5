"""`simulator.wsgi:app` — the app for a WSGI server of your own, with the ticker that makes jobs finish on time.

    granian --interface wsgi --blocking-threads 8 --port 4777 simulator.wsgi:app
    gunicorn -w 1 --threads 64 -b 127.0.0.1:4777 simulator.wsgi:app

Settings come from the environment and `.env`, as for `python server.py`. Run one worker: the jobs live
in the worker's memory; with STORE=redis://… several workers share them (each follows the store's change
stream, and the one holding the ticker's lease drives simulated time). The server imports this module in
its worker process, which starts the ticker there (with gunicorn, do not use --preload: the ticker would
start in the master and not in the worker). `python server.py` serves the same app with held long-polls
in its event loop instead of in threads (see `simulator.serve`).
"""

from __future__ import annotations

import atexit
import logging

from simulator.http import create_app
from simulator.ticker import Clockwork

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app()
clockwork = Clockwork(app.extensions["simulator"].engine).start()
ticker = clockwork.ticker
atexit.register(clockwork.stop)
