"""What the test modules share: paths, services (SQLite, PostgreSQL, Redis), the session's
model, the fleet of worker processes, and reference implementations. Fixtures are registered
in tests/conftest.py; test modules import helpers from here, never from each other."""
