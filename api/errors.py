"""One exception hierarchy for the library. The CLI turns each into a one-line message."""

from __future__ import annotations


class BoundaryError(Exception):
    """Base of every error the library raises on purpose."""


class ConfigError(BoundaryError):
    """Bad input: invalid parameters or options (k < 1, temperature < 0, unknown template...)."""


class UnknownName(ConfigError):
    """A benchmark, model, engine or template name that does not exist."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...] = ()):
        self.kind, self.name, self.known = kind, name, list(known)
        hint = f" (known: {', '.join(self.known)})" if self.known else ""
        super().__init__(f"unknown {kind} '{name}'{hint}")


class NotFound(BoundaryError):
    """Something the input names does not exist in the database: a run id, an experiment, a
    model that was never registered, a scorer with no scores."""


class DataError(BoundaryError):
    """A data file that cannot be read: bad JSON, a missing field. Names file and line."""

    def __init__(self, path: object, line: int | None, message: str):
        self.path, self.line = path, line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


class DatabaseError(BoundaryError):
    """The database cannot be reached, its schema is not at the expected revision, or it refused
    a write another process made first (run the command again)."""


class BrokerError(BoundaryError):
    """The message broker cannot be reached (a bad URL is a ConfigError)."""


class EngineError(BoundaryError):
    """A sampling engine failed to start or to generate."""


class GradingError(BoundaryError):
    """A grader could not be started (not a wrong answer: those are verdicts)."""
