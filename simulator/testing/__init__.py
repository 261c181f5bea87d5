"""Helpers for tests that need a real server: `ServerProcess` starts `python server.py` on a port it reports."""

from simulator.testing.process import ServerProcess

__all__ = ["ServerProcess"]
