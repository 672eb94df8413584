"""Database schema, connection and migrations."""

from boundary.api.db.session import Database, redact_url

__all__ = ["Database", "redact_url"]
