"""The openai engine's options (``--engine-option``), checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from boundary.api import defaults
from boundary.api.errors import ConfigError
from boundary.api.models import ModelSpec
from boundary.workers.engines.openai.messages import public_url


@dataclass(frozen=True)
class OpenAIOptions:
    """The engine's options, checked. See ``boundary.api.defaults.OPENAI_*`` for the defaults."""

    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = defaults.OPENAI_CONCURRENCY
    max_retries: int = defaults.OPENAI_MAX_RETRIES
    backoff_s: float = defaults.OPENAI_BACKOFF_S
    backoff_max_s: float = defaults.OPENAI_BACKOFF_MAX_S
    timeout_s: float = defaults.OPENAI_TIMEOUT_S
    tokenizer: str | None = None

    @classmethod
    def parse(cls, spec: ModelSpec, options: Mapping[str, Any]) -> OpenAIOptions:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"unknown openai engine option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(
            base_url=_base_url(options.get("base_url")),
            model=str(options.get("model") or spec.path),
            api_key=_optional_str(options.get("api_key")),
            concurrency=_number(options, "concurrency", int, minimum=1),
            max_retries=_number(options, "max_retries", int, minimum=0),
            backoff_s=_number(options, "backoff_s", float, minimum=0),
            backoff_max_s=_number(options, "backoff_max_s", float, minimum=0),
            timeout_s=_number(options, "timeout_s", float, minimum=1e-3),
            tokenizer=_optional_str(options.get("tokenizer")),
        )


def _base_url(value: Any) -> str:
    if not value:
        raise ConfigError("the openai engine needs the base_url option, e.g. http://127.0.0.1:8000/v1")
    url = str(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"openai engine option base_url must be an http(s) URL without a query, got {public_url(url)!r}"
        )
    return url


def _optional_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _number(options: Mapping[str, Any], name: str, kind: type[int] | type[float], minimum: float) -> Any:
    default = OpenAIOptions.__dataclass_fields__[name].default
    raw = options.get(name, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"openai engine option {name} must be a number, got {raw!r}") from None
    if kind is int and value != float(raw):
        raise ConfigError(f"openai engine option {name} must be a whole number, got {raw!r}")
    if value < minimum:
        raise ConfigError(f"openai engine option {name} must be >= {minimum:g}, got {raw!r}")
    return value
