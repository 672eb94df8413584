"""Concurrent requests of the openai engine: a batch of items, each handled by one or more HTTP
requests, drawn on an event loop in a background thread, results handed back as they finish.
A ``generate`` call is one batch of samples (one request each); the token-level interface
(``tokens.OpenAITokens``) runs its extensions (two requests each) and its single requests the same
way, so every request shares the concurrency limit, the retries and the error messages."""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from boundary.api.errors import EngineError
from boundary.api.types import Completion, GenerationRequest, SamplingConfig
from boundary.workers.engines.openai.messages import describe, public_url, server_message
from boundary.workers.engines.openai.options import OpenAIOptions
from boundary.workers.engines.openai.retries import backoff_delay, is_retryable, retry_after_s
from boundary.workers.engines.openai.server import completion_of, decode, headers, payload

Item = TypeVar("Item")
Result = TypeVar("Result")


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


class Refused(EngineError):
    """The server answered a request with a status that is not worth retrying (a 4xx other
    than RETRY_STATUSES); ``status`` lets a caller tell a missing endpoint (404) from bad input,
    ``detail`` is the status and the server's message."""

    def __init__(self, message: str, status: int, detail: str):
        super().__init__(message)
        self.status, self.detail = status, detail


class _Done:
    """Put on the result queue when every item has been handled."""


@dataclass(frozen=True)
class _Failed:
    error: BaseException


Handler = Callable[["Batch[Any, Any]", httpx.AsyncClient, Item], Awaitable[Result]]
"""The work for one item: the requests it needs (through ``Batch.post``) and its result."""


class Batch(Generic[Item, Result]):
    """Items in flight: an event loop in a background thread handling each with ``handle``, at
    most ``options.concurrency`` at once, and a queue the caller's thread reads results from."""

    def __init__(self, options: OpenAIOptions, items: Sequence[Item], handle: Handler[Item, Result]):
        self.options, self.items, self.handle = options, list(items), handle
        self.results: queue.SimpleQueue[Result | _Done | _Failed] = queue.SimpleQueue()
        self.rng = random.Random()
        self.loop = asyncio.new_event_loop()
        self.task = self.loop.create_task(self.run())
        self.thread = threading.Thread(target=self._thread_main, name="openai-engine", daemon=True)

    def __iter__(self) -> Iterator[Result]:
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
                pending = iter(self.items)
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(width, len(self.items))):
                        group.create_task(self.worker(client, pending))
        except BaseExceptionGroup as failures:
            self.results.put(_Failed(first_error(failures)))
        except Exception as exc:
            self.results.put(_Failed(exc))
        else:
            self.results.put(_Done())

    async def worker(self, client: httpx.AsyncClient, pending: Iterator[Item]) -> None:
        for item in pending:
            self.results.put(await self.handle(self, client, item))

    async def post(self, client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``url``, retrying what can be retried; the decoded answer."""
        where = f"OpenAI-compatible server at {public_url(url)}"
        attempts = self.options.max_retries + 1
        for attempt in range(attempts):
            retry_after, failure = None, ""
            try:
                response = await client.post(url, json=body)
            except httpx.TransportError as exc:
                failure = describe(exc)
            else:
                if response.is_success:
                    return decode(response, where)
                failure = f"{response.status_code}: {server_message(response)}"
                if not is_retryable(response.status_code):
                    raise Refused(f"{where} answered {failure}", response.status_code, failure)
                retry_after = retry_after_s(response)
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff_delay(attempt, self.options, retry_after, self.rng))
        raise EngineError(f"{where} failed {attempts} attempt(s), last: {failure}")


def sampling(config: SamplingConfig) -> Handler[Sample, Completion]:
    """The work of a plain sample: one ``/completions`` request."""

    async def draw(batch: Batch[Any, Any], client: httpx.AsyncClient, sample: Sample) -> Completion:
        options = batch.options
        body = await batch.post(client, f"{options.base_url}/completions", payload(options.model, sample, config))
        return completion_of(sample, body)

    return draw


def gather(options: OpenAIOptions, items: Sequence[Item], handle: Handler[Item, Result]) -> list[Result]:
    """Handle every item concurrently (a Batch), the results in the items' order; what is still
    in flight is cancelled if one fails."""

    async def indexed(batch: Batch[Any, Any], client: httpx.AsyncClient, item: tuple[int, Item]) -> tuple[int, Result]:
        return item[0], await handle(batch, client, item[1])

    out: list[Any] = [None] * len(items)
    batch = Batch(options, list(enumerate(items)), indexed)
    try:
        for index, result in batch:
            out[index] = result
    finally:
        batch.close()
    return out


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first failure in a task group that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
