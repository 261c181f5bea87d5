"""Testing aids: `ServerProcess` (a real `python server.py` on the port it chose), the pytest plugin
(fixture `translation_server`, in `simulator.testing.pytest_plugin`), servers that misbehave on purpose
(`simulator.testing.misbehaving`) and a proxy that drops downloads mid-way (`DroppingProxy`)."""

from simulator.testing.dropping import DroppingProxy
from simulator.testing.process import ServerProcess

__all__ = ["DroppingProxy", "ServerProcess"]
