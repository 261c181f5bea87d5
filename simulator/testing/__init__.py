"""Testing aids: `ServerProcess` (a real `python server.py` on the port it chose) and the pytest plugin
(fixture `translation_server`, in `simulator.testing.pytest_plugin`)."""

from simulator.testing.process import ServerProcess

__all__ = ["ServerProcess"]
