"""The server's HTTP API as the openai engine uses it: the ``GET /models`` check at load, the
``/completions`` request body for one sample, and the Completion in its answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from boundary.api.errors import EngineError
from boundary.api.types import Completion, SamplingConfig
from boundary.workers.engines.openai.messages import describe, one_line, public_url, server_message

if TYPE_CHECKING:
    from boundary.workers.engines.openai.batch import Sample
    from boundary.workers.engines.openai.options import OpenAIOptions

PROBE_TIMEOUT_S = 10.0
"""Timeout of the ``GET /models`` reachability check at load (seconds): a live server answers
it at once, and a dead one should not hold up a run for the full request timeout."""


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
        prompt_tokens=(body.get("usage") or {}).get("prompt_tokens"),
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


def decode(response: httpx.Response, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise EngineError(f"{where} answered with invalid JSON: {one_line(response.text)}") from None
