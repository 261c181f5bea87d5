"""The simulation domain: jobs, statuses, the priority queue, scheduling, retries, waiting.

Re-exported from `simulator.domain` (and the stores and change feed beside it), where the code lives.
"""

from simulator.clock import Clock, ManualClock, system_clock
from simulator.domain import *  # noqa: F403 - this module is the domain's public name
from simulator.domain import __all__ as _domain_names
from simulator.feed import Change, ChangeFeed, FeedGap
from simulator.store import MemoryStore, Store, StoreError, open_store

__all__ = [*_domain_names, "Change", "ChangeFeed", "Clock", "FeedGap", "ManualClock", "MemoryStore", "Store",
           "StoreError", "open_store", "system_clock"]
