"""Settings of the translation simulator: defaults, environment and `.env`, validation, runtime changes.

Re-exported from `simulator.settings`, where every setting is declared once.
"""

from simulator.settings import (
    KEYS,
    RETIRED,
    RUNTIME_KEYS,
    ConfigError,
    Key,
    Process,
    RuntimeConfig,
    Service,
    Settings,
    Simulation,
    from_mapping,
    load,
)

__all__ = ["KEYS", "RETIRED", "RUNTIME_KEYS", "ConfigError", "Key", "Process", "RuntimeConfig", "Service",
           "Settings", "Simulation", "from_mapping", "load"]
