"""The text of the openai engine's errors: a server's error message, a URL fit to quote, one line."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import httpx

ERROR_CHARS = 200
"""Longest server error message quoted in an EngineError (characters)."""


def public_url(url: str) -> str:
    """``url`` without credentials or query string, fit for an error message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def server_message(response: httpx.Response) -> str:
    """The error message in a server's answer: OpenAI's ``{"error": {"message": ...}}``, the
    variants of other servers, or the raw body."""
    try:
        body = response.json()
    except ValueError:
        return one_line(response.text) or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            error = error.get("message") or error.get("detail") or error
        return one_line(str(error))
    return one_line(str(body))


def describe(exc: BaseException) -> str:
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
