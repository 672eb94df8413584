"""The hf engine's token-level interface: drawing from a proposal (vLLM's top-k and top-p rules,
checked on random logits and against vLLM's own function), then, on SmolLM2-135M (slow), the
exact log p and log q of every drawn token, batch invariance, the stop rules and a power-mcmc run
through boundary.workers.samplers with every returned token counted."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from boundary.api.errors import EngineError
from boundary.api.types import Continuation, Cost, Extension, GenerationRequest, Proposal, SamplingConfig

torch = pytest.importorskip("torch")

from boundary.workers.engines.hf.token_sampling import sample_proposal, sample_tokens  # noqa: E402

QUESTIONS = ["What is 2 + 3?", "Name three primary colors and say why they are called primary.", "Say hi."]

LOGP_TOLERANCE = 1e-4
"""Per token, nats: a drawn token's log p or log q against a direct float32 forward pass over the
whole sequence (no padding, no cache). Measured: at most 1.7e-5; bfloat16 rounding differs by up
to 0.25 between the two layouts, so these checks run the model in float32."""

SUM_TOLERANCE = 1e-3
"""A continuation's summed log p against ``score()`` of its text, nats (measured: at most 1.6e-5)."""


def reference_logq(logits: np.ndarray, proposal: Proposal) -> np.ndarray:
    """log q over the vocabulary, in float64: vLLM's ``apply_top_k_top_p`` (sort ascending; mask
    what is below the k-th largest; softmax, cumulative sum, mask where it is <= 1 - top_p,
    never the last), then log-softmax of what is kept."""
    scaled = logits.astype(np.float64) / proposal.temperature
    order = np.argsort(scaled, kind="stable")
    s = scaled[order]
    if proposal.top_k:
        s = np.where(s < s[len(s) - min(proposal.top_k, len(s))], -np.inf, s)
    if proposal.top_p < 1:
        drop = np.cumsum(np.exp(s - np.logaddexp.reduce(s))) <= 1 - proposal.top_p
        drop[-1] = False
        s = np.where(drop, -np.inf, s)
    out = np.empty_like(s)
    out[order] = s
    return out - np.logaddexp.reduce(out)


def random_logits(rows: int = 4, vocab: int = 300, seed: int = 0) -> torch.Tensor:
    """Rows of logits with different spreads; the last is nearly flat, so its nucleus at top-p 0.9
    is wider than the 256 candidates sample_proposal looks at first."""
    rng = np.random.default_rng(seed)
    spreads = np.linspace(3.0, 0.05, rows)[:, None]
    return torch.tensor(rng.normal(0.0, 1.0, size=(rows, vocab)) * spreads, dtype=torch.float32)


PROPOSALS = [Proposal(1.0), Proposal(0.25), Proposal(1.0, 0.9), Proposal(0.25, 0.9), Proposal(1.0, 1.0, 5),
             Proposal(0.5, 0.8, 20), Proposal(2.0, 0.95, 400)]


@pytest.mark.parametrize("proposal", PROPOSALS, ids=str)
def test_proposal_draws_tokens_with_vllms_truncation(proposal: Proposal) -> None:
    """On a grid of N uniform numbers, each token is drawn N q times (give or take the grid's
    step) and reported with log q, for q computed independently with vLLM's rule."""
    logits = random_logits()
    n = 4000
    grid = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    for row in logits:
        expected = reference_logq(row.numpy(), proposal)
        tokens, logq = sample_proposal(row.expand(n, -1).contiguous(), proposal, grid)
        assert np.isfinite(expected[tokens.numpy()]).all()  # never a truncated token
        np.testing.assert_allclose(logq.numpy(), expected[tokens.numpy()], atol=1e-5)
        counts = np.bincount(tokens.numpy(), minlength=len(row))
        assert np.abs(counts - n * np.exp(expected)).max() <= 2


def test_top_k_keeps_ties_and_top_p_applies_to_the_renormalized_top_k() -> None:
    """vLLM keeps every token tied with the k-th, and cuts the nucleus of the distribution that
    top-k left (renormalized): with probabilities 0.5, 0.3, 0.15, 0.05, top-k 2 leaves 0.625 and
    0.375, so top-p 0.6 keeps only the first (top-p of the unrenormalized ones would keep two)."""
    ties = torch.tensor([[5.0, 4.0, 4.0, 4.0, 1.0, 0.0]])
    grid = (torch.arange(1000, dtype=torch.float64) + 0.5) / 1000
    tokens, logq = sample_proposal(ties.expand(1000, -1).contiguous(), Proposal(1.0, 1.0, 2), grid)
    assert set(tokens.tolist()) == {0, 1, 2, 3}
    kept = ties[0, :4].log_softmax(-1)
    assert torch.allclose(logq, kept[tokens], atol=1e-6)
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    tokens, logq = sample_proposal(probs.expand(1000, -1).contiguous(), Proposal(1.0, 0.6, 2), grid)
    assert set(tokens.tolist()) == {0} and logq.abs().max() < 1e-6


def test_reference_is_vllms_own_function() -> None:
    """The reference above against vLLM's apply_top_k_top_p (the installed version's)."""
    pytest.importorskip("vllm")
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    logits = random_logits(rows=4, vocab=300, seed=1)
    for proposal in PROPOSALS:
        # vLLM's batch leaves out a k at or above the vocabulary's size: here it is capped to it
        k = torch.full((4,), min(proposal.top_k, 300), dtype=torch.long) if proposal.top_k else None
        p = torch.full((4,), proposal.top_p) if proposal.top_p < 1 else None
        theirs = apply_top_k_top_p_pytorch((logits / proposal.temperature).clone(), k, p).log_softmax(-1)
        for row in range(4):
            np.testing.assert_allclose(theirs[row].numpy(), reference_logq(logits[row].numpy(), proposal), atol=1e-5)


def test_without_top_k_the_proposal_draws_what_plain_sampling_draws() -> None:
    logits = random_logits(rows=6, seed=2)
    uniforms = torch.rand(6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for temperature, top_p in [(1.0, 1.0), (0.25, 0.9), (0.7, 0.95)]:
        plain = sample_tokens(logits, SamplingConfig(temperature, top_p, 8, 0), uniforms)
        drawn, _ = sample_proposal(logits, Proposal(temperature, top_p), uniforms)
        assert torch.equal(plain, drawn)


# --- on SmolLM2-135M ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(hf_engine):
    return hf_engine.token_engine()


@pytest.fixture(scope="module")
def contexts(hf_engine, tokens) -> list[tuple[int, ...]]:
    return [tuple(tokens.encode(hf_engine.render_chat([{"role": "user", "content": q}]))) for q in QUESTIONS]


@pytest.fixture
def float32(hf_engine) -> Iterator:
    """The session's hf engine with its weights in float32 for one test (the same model, not a
    second one loaded): bfloat16 rounding would hide small errors. The bfloat16 weights are put
    back afterwards, untouched."""
    saved = {name: p.data for name, p in hf_engine.model.named_parameters()}
    for p in hf_engine.model.parameters():
        p.data = p.data.float()
    try:
        yield hf_engine
    finally:
        for name, p in hf_engine.model.named_parameters():
            p.data = saved[name]


def direct_logits(engine, context: Sequence[int], continuation: Continuation) -> torch.Tensor:
    """Float32 logits of a direct forward pass over context + continuation (one row, no padding,
    no cache): row j predicts the continuation's token j."""
    ids = torch.tensor([list(context) + list(continuation.tokens)])
    with torch.inference_mode():
        logits = engine.model(ids).logits[0].float()
    return logits[len(context) - 1 : len(context) - 1 + len(continuation.tokens)]


@pytest.mark.slow
def test_logp_is_the_models_raw_logprob(float32, contexts) -> None:
    """Per token against a direct forward pass, and summed against the engine's own score()."""
    from boundary.api.types import ScoreRequest

    engine = float32
    prompts = [engine.render_chat([{"role": "user", "content": q}]) for q in QUESTIONS]
    requests = [Extension(i, c, 24, 7 + i) for i, c in enumerate(contexts)]
    drawn = engine.token_engine().extend(requests, Proposal(0.25, 0.9))
    for request, c, prompt in zip(requests, drawn, prompts, strict=True):
        raw = direct_logits(engine, request.context, c).log_softmax(-1)
        expected = raw.gather(-1, torch.tensor(c.tokens).unsqueeze(-1)).squeeze(-1)
        np.testing.assert_allclose(c.logp, expected.numpy(), atol=LOGP_TOLERANCE)
        text = engine.tokenizer.decode(list(c.tokens), skip_special_tokens=False)
        assert engine.tokenizer(text, add_special_tokens=False)["input_ids"] == list(c.tokens)  # score() sees them
        (scored,) = engine.score([ScoreRequest(request.key, prompt, text)])
        assert scored.num_tokens == len(c.tokens)
        assert scored.sum_logprob == pytest.approx(sum(c.logp), abs=SUM_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("proposal", [Proposal(0.25), Proposal(0.25, 0.9), Proposal(0.25, 1.0, 5)], ids=str)
def test_logq_is_the_processed_distributions(float32, contexts, proposal: Proposal) -> None:
    """log q against vLLM's rule applied to a direct forward pass's logits; at temperature 0.25 it
    is far from log p, so reporting the raw value (or forgetting the temperature) fails."""
    drawn = float32.token_engine().extend([Extension(i, c, 24, 40 + i) for i, c in enumerate(contexts)], proposal)
    gaps = []
    for context, c in zip(contexts, drawn, strict=True):
        logits = direct_logits(float32, context, c).numpy()
        expected = np.array([reference_logq(row, proposal)[t] for row, t in zip(logits, c.tokens, strict=True)])
        np.testing.assert_allclose(c.logq, expected, atol=LOGP_TOLERANCE)
        gaps.extend(np.abs(np.array(c.logq) - np.array(c.logp)))
    assert max(gaps) > 100 * LOGP_TOLERANCE


@pytest.mark.slow
def test_a_continuation_does_not_depend_on_its_batch(tokens, contexts) -> None:
    """The same request alone (one row, filler rows around it) and among other contexts, other
    seeds and the same context with another seed: the same tokens and log-probabilities."""
    proposal = Proposal(1.0, 0.95)
    request = Extension("me", contexts[0], 16, 1234)
    (alone,) = tokens.extend([request], proposal)
    others = [Extension("a", contexts[1], 20, 5), Extension("b", contexts[0], 16, 99),
              Extension("c", contexts[2] + alone.tokens[:3], 8, 7), Extension("d", contexts[2], 30, 8)]
    batch = tokens.extend([others[0], others[1], request, *others[2:]], proposal)
    assert [c.key for c in batch] == ["a", "b", "me", "c", "d"]
    assert batch[2].tokens == alone.tokens and batch[2].stopped == alone.stopped
    assert batch[2].logp == pytest.approx(alone.logp, abs=1e-5)
    assert batch[2].logq == pytest.approx(alone.logq, abs=1e-5)
    assert batch[1].tokens != alone.tokens  # another seed, another draw
    assert batch[2].cost == alone.cost == Cost(len(alone.tokens), len(contexts[0]), 1)


@pytest.mark.slow
def test_stop_tokens_and_limits(tokens, contexts) -> None:
    """A stop token ends a continuation and is returned (stopped, not shown by decode);
    max_new_tokens caps the rest, each its own."""
    proposal = Proposal(0.25)
    drawn = tokens.extend([Extension("hi", contexts[2], 40, 3), Extension("one", contexts[1], 1, 3),
                           Extension("five", contexts[1], 5, 3), Extension("none", contexts[1], 0, 3)], proposal)
    hi, one, five, none = drawn
    assert hi.stopped and hi.tokens[-1] in tokens.stop_ids and 1 < len(hi.tokens) < 40
    assert not set(hi.tokens[:-1]) & tokens.stop_ids
    assert "<|im_end|>" not in tokens.decode(hi.tokens) and tokens.decode(hi.tokens).strip()
    assert (len(one.tokens), len(five.tokens), one.stopped, five.stopped) == (1, 5, False, False)
    assert five.tokens[:1] == one.tokens  # the same seed and context: the same first draw
    assert (none.tokens, none.logp, none.logq, none.stopped, none.cost) == ((), (), (), False, Cost())
    for c in (hi, one, five):
        assert len(c.tokens) == len(c.logp) == len(c.logq) == c.cost.decoded_tokens
        assert all(q <= 0 for q in c.logq) and all(p <= 0 for p in c.logp)


@pytest.mark.slow
def test_the_context_limit(hf_engine, contexts) -> None:
    from boundary.workers.engines.hf.engine import TransformersEngine

    capped = TransformersEngine(hf_engine.model, hf_engine.tokenizer, hf_engine.options)
    capped.max_model_len = len(contexts[1]) + 3
    engine = capped.token_engine()
    assert engine.max_context == len(contexts[1]) + 3
    (c,) = engine.extend([Extension(0, contexts[1], 20, 1)], Proposal(1.0))
    assert len(c.tokens) == 3 and not c.stopped
    with pytest.raises(EngineError, match="does not fit max_model_len"):
        engine.extend([Extension(0, contexts[1] + c.tokens, 5, 1)], Proposal(1.0))
    with pytest.raises(EngineError, match="empty context"):
        engine.extend([Extension(0, (), 5, 1)], Proposal(1.0))


@pytest.mark.slow
def test_top_k_one_is_greedy(hf_engine, tokens, contexts) -> None:
    """Whatever the seed, top-k 1 gives plain greedy decoding's tokens, each with log q 0."""
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=16, seed=0)
    prompt = hf_engine.render_chat([{"role": "user", "content": QUESTIONS[1]}])
    (plain,) = hf_engine.generate([GenerationRequest("g", prompt, 0, 0, 1)], greedy)
    requests = [Extension("a", contexts[1], 16, 1), Extension("b", contexts[1], 16, 2)]
    a, b = tokens.extend(requests, Proposal(1.0, 1.0, 1))
    assert a.tokens == b.tokens and len(a.tokens) == plain.num_tokens
    assert tokens.decode(a.tokens) == plain.text
    assert a.logq == (0.0,) * len(a.tokens)
    assert sum(a.logp) == pytest.approx(plain.cumulative_logprob, abs=1e-4)


class CountingEngine:
    """An Engine whose token engine is the hf one, with every token it returns counted (the
    engine boundary the samplers' costs must add up to)."""

    name = "hf"

    def __init__(self, inner):
        self.inner = inner
        self.returned = Cost()
        self.calls = 0

    def token_engine(self):
        return self

    @property
    def stop_ids(self) -> frozenset[int]:
        return self.inner.stop_ids

    @property
    def max_context(self) -> int | None:
        return self.inner.max_context

    def encode(self, prompt: str) -> list[int]:
        return self.inner.encode(prompt)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.inner.decode(tokens)

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        out = self.inner.extend(requests, proposal)
        self.calls += 1
        for r, c in zip(requests, out, strict=True):
            self.returned = self.returned + Cost(len(c.tokens), len(r.context), 1)
        return out


@pytest.mark.slow
def test_power_mcmc_through_the_samplers(hf_engine, tokens) -> None:
    """power-mcmc on one short prompt: every completion costs at least its own tokens, and the
    costs add up to what the engine returned."""
    from boundary.api.samplers import sampler_spec
    from boundary.workers import samplers

    counting = CountingEngine(tokens)
    spec = sampler_spec("power-mcmc", {"block_tokens": 8, "mcmc_steps": 2})
    prompt = hf_engine.render_chat([{"role": "user", "content": QUESTIONS[0]}])
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=24, seed=0)
    done = list(samplers.generate(counting, spec, [GenerationRequest("q", prompt, 11, 0, 2)], config))
    assert sorted(c.index for c in done) == [0, 1]
    for c in done:
        assert 1 <= c.num_tokens <= 24 and c.cost.decoded_tokens >= c.num_tokens
        assert c.prompt_tokens == len(tokens.encode(prompt)) and c.diagnostics["proposals"] >= 2
    total = Cost()
    for c in done:
        total = total + c.cost
    assert total == counting.returned and counting.calls >= 3
    assert total.decoded_tokens > sum(c.num_tokens for c in done)  # rejected and replaced suffixes count too
