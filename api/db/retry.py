"""Riding out a database restart: retry an operation on connection errors, with backoff,
for a bounded time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

T = TypeVar("T")
log = logging.getLogger("boundary.db")


def is_transient(exc: BaseException) -> bool:
    """A lost or refused connection (the server restarting, connections cut), not a bad query."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def with_retry(operation: Callable[[], T], window_s: float, first_wait_s: float = 0.5, max_wait_s: float = 10.0) -> T:
    """``operation()``, retried on transient database errors until ``window_s`` has passed."""
    deadline = time.monotonic() + window_s
    wait = first_wait_s
    while True:
        try:
            return operation()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + wait > deadline:
                raise
            log.warning("database unavailable (%s); retrying in %.1fs", str(exc).splitlines()[0][:200], wait)
            time.sleep(wait)
            wait = min(wait * 2, max_wait_s)
