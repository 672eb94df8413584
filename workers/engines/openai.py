"""Any OpenAI-compatible ``/v1/completions`` server (``vllm serve``, SGLang, TGI...).

One HTTP request per sample (``n=1``) with ``seed = problem seed + i``, so sample ``i`` of a
problem depends only on its prompt, the sampling config and its own seed: a top-up from 8 to
16 samples requests exactly the samples 8..15 that a run of 16 would have (the same texts, where
the server's own batching does not change them: vLLM's batched sampling is not batch-invariant,
so with concurrent requests a sample can differ from run to run; ``concurrency=1`` against an
otherwise idle server reproduces it exactly). Requests run
concurrently (``concurrency`` at a time) on an asyncio loop in a background thread, and
completions come back as they finish; abandoning the iterator cancels what is in flight.

429, 5xx, timeouts and dropped connections are retried with exponential backoff and jitter
(honouring ``Retry-After``); other 4xx fail at once. ``logprobs: 1`` asks for the sampled
token's logprob (any server that returns logprobs accepts 1; some read 0 as "off").
"""

from __future__ import annotations

import asyncio
import email.utils
import queue
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from boundary.api import defaults
from boundary.api.errors import ConfigError, EngineError
from boundary.api.models import ModelSpec
from boundary.api.types import Completion, GenerationRequest, ProgressFn, SamplingConfig

PROBE_TIMEOUT_S = 10.0
"""Timeout of the ``GET /models`` reachability check at load (seconds): a live server answers
it at once, and a dead one should not hold up a run for the full request timeout."""

ERROR_CHARS = 200
"""Longest server error message quoted in an EngineError (characters)."""

RETRY_STATUSES = frozenset({408, 409, 429})
"""4xx statuses worth retrying (request timeout, conflict, rate limit: the ones the openai client
retries); every 5xx is retried too. Any other 4xx is a bad request and fails at once."""


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


@dataclass(frozen=True)
class Sample:
    """One HTTP request to make: sample ``index`` of ``key``'s prompt, drawn with ``seed``."""

    key: Any
    index: int
    prompt: str
    seed: int


def samples_of(requests: Sequence[GenerationRequest]) -> list[Sample]:
    return [
        Sample(r.key, i, r.prompt, r.seed + i)
        for r in requests
        for i in range(r.first_index, r.first_index + r.count)
    ]


def payload(model: str, sample: Sample, config: SamplingConfig) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": sample.prompt,
        "n": 1,
        "seed": sample.seed,
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "logprobs": 1,
        "stream": False,
    }


def completion_of(sample: Sample, body: Any) -> Completion:
    """The Completion in a ``/completions`` answer; EngineError when it has none."""
    try:
        choice = body["choices"][0]
        text = choice["text"]
    except (KeyError, IndexError, TypeError):
        raise EngineError(f"the server's answer has no completion: {one_line(str(body))}") from None
    logprobs = choice.get("logprobs") or {}
    token_logprobs = [lp for lp in logprobs.get("token_logprobs") or [] if lp is not None]
    num_tokens = (body.get("usage") or {}).get("completion_tokens")
    if num_tokens is None:
        num_tokens = len(logprobs.get("tokens") or [])
    return Completion(
        key=sample.key,
        index=sample.index,
        text=text,
        num_tokens=int(num_tokens),
        finish_reason=choice.get("finish_reason"),
        cumulative_logprob=float(sum(token_logprobs)) if token_logprobs else None,
    )


def check_server(options: OpenAIOptions) -> None:
    """A cheap ``GET /models``: the server answers, accepts the key, and serves the model."""
    url = f"{options.base_url}/models"
    try:
        response = httpx.get(url, headers=headers(options), timeout=min(PROBE_TIMEOUT_S, options.timeout_s))
    except httpx.HTTPError as exc:
        raise EngineError(
            f"cannot reach OpenAI-compatible server at {public_url(options.base_url)}: {describe(exc)}"
        ) from None
    if not response.is_success:
        raise EngineError(
            f"OpenAI-compatible server at {public_url(url)} answered {response.status_code}: "
            f"{server_message(response)}"
        )
    served = served_models(response)
    if served and options.model not in served:
        raise EngineError(
            f"the server at {public_url(options.base_url)} does not serve model '{options.model}' "
            f"(it serves: {', '.join(served)}); set the openai engine option model"
        )


def served_models(response: httpx.Response) -> list[str]:
    """Model ids in a ``/models`` answer; empty when it does not have the usual shape."""
    try:
        data = response.json().get("data")
        return [str(entry["id"]) for entry in data]
    except (ValueError, AttributeError, KeyError, TypeError):
        return []


def headers(options: OpenAIOptions) -> dict[str, str]:
    return {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}


def describe(exc: BaseException) -> str:
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Done:
    """Put on the result queue when every sample has been yielded."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


class Batch:
    """One ``generate`` call in flight: an event loop in a background thread drawing every
    sample, and a queue the caller's thread reads completions from."""

    def __init__(self, options: OpenAIOptions, samples: list[Sample], config: SamplingConfig):
        self.options, self.samples, self.config = options, samples, config
        self.url = f"{options.base_url}/completions"
        self.where = f"OpenAI-compatible server at {public_url(self.url)}"
        self.results: queue.SimpleQueue[Completion | _Done | _Failed] = queue.SimpleQueue()
        self.rng = random.Random()
        self.loop = asyncio.new_event_loop()
        self.task = self.loop.create_task(self.run())
        self.thread = threading.Thread(target=self._thread_main, name="openai-engine", daemon=True)

    def __iter__(self) -> Iterator[Completion]:
        self.thread.start()
        while True:
            item = self.results.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Cancel what is still in flight, close the HTTP client and the loop; idempotent."""
        if self.loop.is_closed():
            return
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.task.cancel)
            self.thread.join()
        elif not self.thread.ident:
            self.task.cancel()
            self.loop.run_until_complete(asyncio.gather(self.task, return_exceptions=True))
        self.loop.close()
        self.results.put(_Failed(EngineError("the openai engine was closed while generating")))

    def _thread_main(self) -> None:
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())

    async def run(self) -> None:
        width = self.options.concurrency
        client = httpx.AsyncClient(
            headers=headers(self.options),
            limits=httpx.Limits(max_connections=width, max_keepalive_connections=width),
            timeout=httpx.Timeout(self.options.timeout_s),
        )
        try:
            async with client:
                pending = iter(self.samples)
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(width, len(self.samples))):
                        group.create_task(self.worker(client, pending))
        except BaseExceptionGroup as failures:
            self.results.put(_Failed(first_error(failures)))
        except Exception as exc:
            self.results.put(_Failed(exc))
        else:
            self.results.put(_Done())

    async def worker(self, client: httpx.AsyncClient, pending: Iterator[Sample]) -> None:
        for sample in pending:
            body = await self.post(client, payload(self.options.model, sample, self.config))
            self.results.put(completion_of(sample, body))

    async def post(self, client: httpx.AsyncClient, body: dict[str, Any]) -> Any:
        """POST ``body``, retrying what can be retried; the decoded answer."""
        attempts = self.options.max_retries + 1
        for attempt in range(attempts):
            retry_after, failure = None, ""
            try:
                response = await client.post(self.url, json=body)
            except httpx.TransportError as exc:
                failure = describe(exc)
            else:
                if response.is_success:
                    return decode(response, self.where)
                failure = f"{response.status_code}: {server_message(response)}"
                if not is_retryable(response.status_code):
                    raise EngineError(f"{self.where} answered {failure}")
                retry_after = retry_after_s(response)
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff_delay(attempt, self.options, retry_after, self.rng))
        raise EngineError(f"{self.where} failed {attempts} attempt(s), last: {failure}")


def decode(response: httpx.Response, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise EngineError(f"{where} answered with invalid JSON: {one_line(response.text)}") from None


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first failure in a task group that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]


class OpenAIEngine:
    name = "openai"

    def __init__(self, options: OpenAIOptions):
        self.options = options
        self._tokenizer: Any = None
        self._batches: set[Batch] = set()
        self._closed = False

    @classmethod
    def load(cls, spec: ModelSpec, options: Mapping[str, Any], cache_dir: Path) -> OpenAIEngine:
        """Check the options and that the server answers; ``cache_dir`` is unused (the weights
        live with the server)."""
        parsed = OpenAIOptions.parse(spec, options)
        check_server(parsed)
        return cls(parsed)

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        tokenizer = self.tokenizer()
        if not getattr(tokenizer, "chat_template", None):
            raise EngineError(
                f"tokenizer {self.options.tokenizer} has no chat template; use --template boxed or qwen-boxed"
            )
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    def tokenizer(self) -> Any:
        """The tokenizer named by the ``tokenizer`` option, loaded on first use."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.options.tokenizer)
        return self._tokenizer

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        config: SamplingConfig,
        progress: ProgressFn | None = None,
    ) -> Iterator[Completion]:
        if self._closed:
            raise EngineError("the openai engine is closed")
        samples = samples_of(requests)
        if not samples:
            return
        batch = Batch(self.options, samples, config)
        self._batches.add(batch)
        try:
            for completion in batch:
                if progress is not None:
                    progress(1)
                yield completion
        finally:
            batch.close()
            self._batches.discard(batch)

    def close(self) -> None:
        self._closed = True
        for batch in list(self._batches):
            batch.close()
        self._batches.clear()
        self._tokenizer = None


def load_tokenizer(source: str | None) -> Any:
    if source is None:
        raise EngineError(
            "the openai engine needs the tokenizer option (a local folder or hub id) to apply the "
            "model's chat template; or use --template boxed or qwen-boxed"
        )
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise EngineError("the tokenizer option needs transformers: pip install transformers") from None
    try:
        return AutoTokenizer.from_pretrained(source)
    except Exception as exc:
        raise EngineError(f"cannot load tokenizer {source}: {describe(exc)}") from None
