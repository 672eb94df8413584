"""Which failed requests the openai engine retries, and how long it waits before each retry."""

from __future__ import annotations

import email.utils
import random
import time
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from boundary.workers.engines.openai.options import OpenAIOptions

RETRY_STATUSES = frozenset({408, 409, 429})
"""4xx statuses worth retrying (request timeout, conflict, rate limit: the ones the openai client
retries); every 5xx is retried too. Any other 4xx is a bad request and fails at once."""


def retry_after_s(response: httpx.Response) -> float | None:
    """The wait a ``Retry-After`` header asks for (seconds or an HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(
    attempt: int, options: OpenAIOptions, retry_after: float | None, rng: random.Random
) -> float:
    """Wait before retry ``attempt`` (0-based): ``Retry-After`` when the server sent one, else
    ``backoff_s * 2**attempt`` with "equal jitter" (half fixed, half random); never more than
    ``backoff_max_s``."""
    if retry_after is not None:
        return min(retry_after, options.backoff_max_s)
    ceiling = min(options.backoff_s * 2.0**attempt, options.backoff_max_s)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def is_retryable(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES
