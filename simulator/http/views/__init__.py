"""The HTTP API as blueprints: submissions, jobs, admin, ops, docs. A view parses, calls the engine, serialises."""
