"""The HTTP layer: `create_app` registers blueprints over the engine; one error handler answers problem+json."""

from simulator.http.app import create_app

__all__ = ["create_app"]
