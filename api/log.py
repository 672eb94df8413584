"""Where boundary's log lines go: stderr for a command, Celery's handler in a worker, and
timestamped lines for the autoscaling controller."""

from __future__ import annotations

import logging
import sys


class StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def log_to_stderr() -> None:
    """boundary's own log lines (loading a model, converting weights) on stderr."""
    logger = logging.getLogger("boundary")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())
        logger.setLevel(logging.INFO)


def log_through_celery() -> None:
    """In a worker, Celery's log handler prints boundary's lines: drop the command's own."""
    logger = logging.getLogger("boundary")
    for handler in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
        logger.removeHandler(handler)


def log_with_time(name: str) -> None:
    """Logger ``name``'s lines on stderr with their time (a scaling log is read as a timeline)."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO)
