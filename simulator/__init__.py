"""The video translation job simulator: domain, stores, change feed, HTTP layer and serving.

Importing this package (or `simulator.domain`) loads neither Flask nor python-dotenv: the domain is
plain Python. `server.py`, `jobs.py`, `config.py` and `client.py` at the top of the checkout are the
entry points users know; they re-export from here.
"""
