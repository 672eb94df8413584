"""One ``generate`` call of the openai engine: its samples (one HTTP request each), drawn
concurrently on an event loop in a background thread, completions handed back as they finish."""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from boundary.api.errors import EngineError
from boundary.api.types import Completion, GenerationRequest, SamplingConfig
from boundary.workers.engines.openai.messages import describe, public_url, server_message
from boundary.workers.engines.openai.options import OpenAIOptions
from boundary.workers.engines.openai.retries import backoff_delay, is_retryable, retry_after_s
from boundary.workers.engines.openai.server import completion_of, decode, headers, payload


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


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first failure in a task group that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
