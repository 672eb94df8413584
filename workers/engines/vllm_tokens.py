"""The vllm engine's token-level interface (boundary.api.types.TokenEngine), what the samplers
beyond plain sampling need: token ids in and out, with the exact log q (proposal) and log p
(model) of every drawn token. Two vLLM calls per ``extend``:

1. decode: one ``SamplingParams(n=1, seed=extension seed)`` per extension over its context as
   token ids, with ``logprobs=0``. The LLM must be loaded with
   ``logprobs_mode="processed_logprobs"``, where vLLM reports each sampled token's
   log-probability after temperature and top-k/top-p, renormalized over the kept tokens: log q.
   Prefix caching stays on, so a context the engine has seen (a chain's prompt and the prefix an
   MH step keeps) is not prefilled again.
2. score: the contexts followed by their new tokens, as one batch of prompts with
   ``prompt_logprobs=0``: vLLM's prompt log-probabilities are always the raw model's
   (temperature 1, no truncation, whatever ``logprobs_mode`` is): log p. Asking for them makes
   vLLM skip reading the prefix cache for that request (cached rows would get no prompt
   log-probabilities), so this call prefills every token of its prompt.

vLLM 0.32 can score only chosen rows (``prompt_logprob_start`` with
``prompt_logprob_token_ids``) on its V2 model runner alone; the CPU backend runs the V1 runner,
so the scoring call computes every row's log-probabilities and keeps those of the new tokens.
How each call's work is counted: ``VllmTokens.extend``; docs/engines.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from boundary.api.errors import EngineError
from boundary.api.types import Continuation, Cost, Extension, Proposal

PROCESSED = "processed_logprobs"
"""The ``logprobs_mode`` the LLM must be loaded with (what TOKEN_OPTIONS passes)."""


@dataclass(frozen=True)
class _Drawn:
    """What the decode call gave one extension: its tokens, their log q, and the context tokens
    vLLM found in its prefix cache."""

    tokens: tuple[int, ...]
    logq: tuple[float, ...]
    cached: int


@dataclass(frozen=True)
class _Scored:
    """What the scoring call gave one extension: log p of its tokens, the tokens the call
    generated (vLLM generates at least one) and the prompt tokens it computed."""

    logp: tuple[float, ...]
    decoded: int
    prefilled: int


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def stop_ids_of(eos_token_id: int | None, generation_config: Mapping[str, Any]) -> frozenset[int]:
    """The tokens vLLM stops on without stop strings: the tokenizer's EOS and the generation
    config's ``eos_token_id`` (an int or a list), as ``SamplingParams.update_from_generation_config``
    adds them."""
    ids: set[int] = set() if eos_token_id is None else {int(eos_token_id)}
    configured = generation_config.get("eos_token_id")
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    return frozenset(ids)


class VllmTokens:
    """The TokenEngine of a loaded VllmEngine (``VllmEngine.token_engine()``): it shares the
    engine's LLM, so it works while the engine stays open."""

    name = "vllm"

    def __init__(self, engine: Any):
        llm = engine.llm
        if llm is None:
            raise EngineError("the vllm engine is closed")
        config = llm.llm_engine.model_config
        if config.logprobs_mode != PROCESSED:
            raise EngineError(f"the vllm engine gives no log-probabilities under the proposal: it was loaded with "
                              f"logprobs_mode={config.logprobs_mode}, the samplers need {PROCESSED} "
                              "(open_engine(..., tokens=True))")
        self._engine = engine
        self.tokenizer = engine.tokenizer
        self.max_context: int = int(config.max_model_len)
        self.stop_ids = stop_ids_of(self.tokenizer.eos_token_id, config.try_get_generation_config() or {})

    @property
    def _llm(self) -> Any:
        llm = self._engine.llm
        if llm is None:
            raise EngineError("the vllm engine is closed")
        return llm

    def encode(self, prompt: str) -> list[int]:
        """As vLLM tokenizes a text prompt for plain sampling (the tokenizer's special tokens on)."""
        return list(self.tokenizer(prompt).input_ids)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True)

    def room(self, extension: Extension) -> int:
        """New tokens this extension may ask vLLM for: ``max_new_tokens``, cut so that the
        context and its new tokens stay one position short of ``max_model_len`` (the scoring call
        feeds them back as a prompt and generates one token after it)."""
        room = min(extension.max_new_tokens, self.max_context - 1 - len(extension.context))
        if extension.max_new_tokens > 0 and room < 1:
            raise EngineError(f"a context of {len(extension.context)} tokens leaves no room to extend within "
                              f"vLLM's max_model_len of {self.max_context}")
        return max(room, 0)

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        """One continuation per extension, in order. Each one's ``cost``, per vLLM's outputs:
        ``decoded_tokens`` = its new tokens + the one token the scoring call generates;
        ``prefill_tokens`` = context tokens the decode call computed (the context minus
        ``num_cached_tokens``) + the scoring call's prompt (context and new tokens; it reads no
        prefix cache); ``engine_calls`` = 2. An extension of ``max_new_tokens`` 0 asks nothing."""
        rooms = [self.room(r) for r in requests]
        asked = [(r, room) for r, room in zip(requests, rooms) if room > 0]
        drawn = self._decode([r for r, _ in asked], [room for _, room in asked], proposal)
        scored = iter(zip(drawn, self._score([r for r, _ in asked], drawn)))
        out: list[Continuation] = []
        for r, room in zip(requests, rooms):
            if room == 0:
                out.append(Continuation(r.key, (), (), (), False, Cost()))
                continue
            d, s = next(scored)
            stopped = bool(d.tokens) and d.tokens[-1] in self.stop_ids
            cost = Cost(len(d.tokens) + s.decoded, len(r.context) - d.cached + s.prefilled, 2)
            out.append(Continuation(r.key, d.tokens, s.logp, d.logq, stopped, cost))
        return out

    def _generate(self, prompts: list[Any], params: list[Any], what: str) -> list[Any]:
        if not prompts:
            return []
        try:
            return list(self._llm.generate(prompts, params, use_tqdm=False))
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"vLLM {what} failed: {_first_line(exc)}") from exc

    def _decode(self, requests: Sequence[Extension], rooms: Sequence[int], proposal: Proposal) -> list[_Drawn]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(r.context)) for r in requests]
        params = [SamplingParams(n=1, temperature=proposal.temperature, top_p=proposal.top_p, top_k=proposal.top_k,
                                 max_tokens=room, seed=r.seed, logprobs=0)
                  for r, room in zip(requests, rooms)]
        drawn = []
        for output in self._generate(prompts, params, "generation"):
            (child,) = output.outputs
            tokens = tuple(int(t) for t in child.token_ids)
            logq = tuple(float(child.logprobs[j][t].logprob) for j, t in enumerate(tokens))
            drawn.append(_Drawn(tokens, logq, int(output.num_cached_tokens or 0)))
        return drawn

    def _score(self, requests: Sequence[Extension], drawn: Sequence[_Drawn]) -> list[_Scored]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=[*r.context, *d.tokens]) for r, d in zip(requests, drawn)]
        params = SamplingParams(n=1, temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False)
        scored = []
        for r, d, output in zip(requests, drawn, self._generate(prompts, [params] * len(prompts), "scoring"),
                                strict=True):
            start, rows = len(r.context), output.prompt_logprobs
            logp = tuple(float(rows[start + j][t].logprob) for j, t in enumerate(d.tokens))
            computed = len(output.prompt_token_ids) - int(output.num_cached_tokens or 0)
            scored.append(_Scored(logp, len(output.outputs[0].token_ids), computed))
        return scored
