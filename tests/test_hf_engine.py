"""The transformers engine for real: SmolLM2-135M-Instruct on the CPU, one engine per module:
sampling, scoring against a direct forward pass, and `boundary score --engine hf`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from boundary.api.errors import ConfigError
from boundary.api.models import ALIASES
from boundary.api.types import Completion, GenerationRequest, SamplingConfig, ScoreRequest

pytestmark = pytest.mark.slow

CONFIG = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=24, seed=0)
QUESTIONS = ["What is 2 + 3?", "Name three primary colors and say why they are called primary.", "Say hi."]
SEEDS = [11, 22, 33]


def prompts(engine) -> list[str]:
    return [engine.render_chat([{"role": "user", "content": q}]) for q in QUESTIONS]


def draw(engine, first: int, count: int, order: range | None = None) -> dict[tuple, Completion]:
    ps = prompts(engine)
    order = order or range(len(ps))
    requests = [GenerationRequest(i, ps[i], SEEDS[i], first, count) for i in order]
    return {(c.key, c.index): c for c in engine.generate(requests, CONFIG)}


def texts(completions: dict[tuple, Completion]) -> dict[tuple, str]:
    return {key: c.text for key, c in completions.items()}


@pytest.fixture(scope="module")
def whole(hf_engine) -> dict[tuple, Completion]:
    """Samples 0..5 of every prompt, drawn at once."""
    return draw(hf_engine, 0, 6)


def test_chat_template_is_the_models_own(hf_engine) -> None:
    prompt = hf_engine.render_chat([{"role": "user", "content": "Hi"}])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nHi<|im_end|>" in prompt


def test_top_up_union_equals_one_larger_draw(hf_engine, whole) -> None:
    first = draw(hf_engine, 0, 2)
    rest = draw(hf_engine, 2, 4, order=range(2, -1, -1))  # the problems in another order
    assert sorted({**first, **rest}) == sorted(whole) == [(i, j) for i in range(3) for j in range(6)]
    assert texts({**first, **rest}) == texts(whole)
    # The texts must be identical. The logprobs were bit-identical on one x86 CPU, but on an
    # AVX-512 one a different number of rows changes the float32 GEMM's blocking, moving sums of
    # 24 log-probabilities in the 7th digit (docs/engines.md says so): not a different draw.
    union = {**first, **rest}
    assert all(math.isclose(union[k].cumulative_logprob, c.cumulative_logprob, rel_tol=1e-5) for k, c in whole.items())
    assert len(set(texts(whole).values())) > 9  # temperature 1: the samples really differ


def test_a_sample_does_not_depend_on_its_batch(hf_engine, whole) -> None:
    """Prompt 0 alone, with one sample (a batch of one row), equals its draw beside others."""
    (p,) = prompts(hf_engine)[:1]
    alone = {(c.key, c.index): c.text for c in hf_engine.generate([GenerationRequest(0, p, SEEDS[0], 5, 1)], CONFIG)}
    assert alone == {(0, 5): whole[(0, 5)].text}


def test_same_seed_same_text_other_seed_other_text(hf_engine) -> None:
    (p,) = prompts(hf_engine)[:1]
    a = {c.index: c.text for c in hf_engine.generate([GenerationRequest("x", p, 5, 0, 3)], CONFIG)}
    b = {c.index: c.text for c in hf_engine.generate([GenerationRequest("x", p, 5, 0, 3)], CONFIG)}
    c = {c.index: c.text for c in hf_engine.generate([GenerationRequest("x", p, 500, 0, 3)], CONFIG)}
    assert a == b
    assert a != c


def test_temperature_zero_is_greedy(hf_engine) -> None:
    (p,) = prompts(hf_engine)[:1]
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=12, seed=0)
    samples = list(hf_engine.generate([GenerationRequest("g", p, 7, 3, 4)], greedy))
    assert sorted(c.index for c in samples) == [3, 4, 5, 6]
    assert len({(c.text, c.num_tokens, c.cumulative_logprob) for c in samples}) == 1
    other_seed = list(hf_engine.generate([GenerationRequest("g", p, 99, 0, 1)], greedy))
    assert other_seed[0].text == samples[0].text


@pytest.fixture(scope="module")
def float32_pair(cache_dir: Path, hf_engine) -> Iterator:
    """A float32 engine and, loaded apart from it, the model as transformers loads it by default
    (its own attention and cache): the independent reference for decoding and scoring."""
    import torch
    from transformers import AutoModelForCausalLM

    from boundary.workers.engines.hf.engine import TransformersEngine
    from boundary.workers.engines.weights import local_weights

    path = local_weights(ALIASES["smollm2-135m"], cache_dir)
    engine = TransformersEngine.load(ALIASES["smollm2-135m"], {"dtype": "float32"}, cache_dir)
    reference = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    yield engine, reference
    engine.close()


def test_float32_greedy_equals_transformers_generate(float32_pair) -> None:
    """The engine's own decoding (padding, cache, attention, stop rule) is the model's: in
    float32, where rounding cannot flip a token, greedy samples equal ``model.generate``'s."""
    import torch

    from boundary.workers.engines.hf.options import parse_options

    engine, reference = float32_pair
    assert parse_options({"dtype": "float32"}).dtype == engine.options.dtype == "float32"
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=24, seed=0)
    reasons = set()
    for i, prompt in enumerate(prompts(engine)[:2]):
        (c,) = engine.generate([GenerationRequest(i, prompt, 0, 0, 1)], greedy)
        reasons.add(c.finish_reason)
        ids = engine.tokenizer(prompt, return_tensors="pt").input_ids
        out = reference.generate(ids, max_new_tokens=24, do_sample=False, output_scores=True,
                                 return_dict_in_generate=True)
        new = out.sequences[0, ids.shape[1] :]
        logprob = sum(torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, new))
        assert c.text == engine.tokenizer.decode(new, skip_special_tokens=True)
        assert c.num_tokens == len(new)  # the end-of-turn token counted, as vLLM counts it
        assert c.cumulative_logprob == pytest.approx(logprob, abs=1e-3)
    assert reasons == {"stop", "length"}


COMPLETIONS = ["5", "Red, yellow and blue: no mixture of other colors makes them.", "Hi! How can I help you today?"]


def reference_score(reference, tokenizer, prompt: str, completion: str, limit: int | None = None) -> tuple[float, int]:
    """A direct forward pass over the prompt's ids then the completion's (the first ``limit``):
    the sum of log_softmax at each completion token, read at the position before it."""
    import torch

    prompt_ids = tokenizer(prompt)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"][:limit]
    with torch.no_grad():
        logits = reference(torch.tensor([prompt_ids + completion_ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    total = sum(logprobs[len(prompt_ids) + j - 1, token].item() for j, token in enumerate(completion_ids))
    return total, len(completion_ids)


def test_score_is_the_completions_logprob_under_the_model(float32_pair) -> None:
    engine, reference = float32_pair
    requests = [ScoreRequest((i, j), p, c) for i, p in enumerate(prompts(engine)) for j, c in enumerate(COMPLETIONS)]
    seen: list[int] = []
    results = list(engine.score(requests, seen.append))
    assert [r.key for r in results] == [r.key for r in requests] and seen == [1] * len(requests)
    for request, result in zip(requests, results, strict=True):
        expected, count = reference_score(reference, engine.tokenizer, request.prompt, request.completion)
        assert result.num_tokens == count > 0
        assert result.sum_logprob == pytest.approx(expected, abs=1e-3)
    # scored alone (no padding, a batch of one) it scores as beside prompts of other lengths
    (alone,) = engine.score(requests[4:5])
    assert alone.sum_logprob == pytest.approx(results[4].sum_logprob, abs=1e-4)
    assert results[1].sum_logprob < results[0].sum_logprob < 0  # a long sentence is less likely than "5"


def test_score_keeps_to_the_context(float32_pair) -> None:
    """Like vLLM: the tokens that fit one position short of max_model_len; an empty completion is 0."""
    from boundary.workers.engines.hf.engine import TransformersEngine

    engine, reference = float32_pair
    prompt = prompts(engine)[1]
    capped = TransformersEngine(engine.model, engine.tokenizer, engine.options)
    capped.max_model_len = len(engine.tokenizer(prompt)["input_ids"]) + 4
    cut, empty = capped.score([ScoreRequest("cut", prompt, COMPLETIONS[1]), ScoreRequest("empty", prompt, "")])
    expected, count = reference_score(reference, engine.tokenizer, prompt, COMPLETIONS[1], limit=3)
    assert (cut.num_tokens, count) == (3, 3)
    assert cut.sum_logprob == pytest.approx(expected, abs=1e-3)
    assert (empty.key, empty.sum_logprob, empty.num_tokens) == ("empty", 0.0, 0)


def test_boundary_score_with_the_hf_engine(hf_engine, own_engine_cache, sqlite_url: str) -> None:
    """`boundary score --engine hf` scores a run's samples, as the engine scores them directly."""
    from click.testing import CliRunner
    from sqlalchemy import create_engine, text

    from boundary.api.cli import cli

    def invoke(*args: str) -> dict:
        result = CliRunner().invoke(cli, [*args, "--database-url", sqlite_url], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout) if "--json" in args else {}

    invoke("run", "--model", "smollm2-135m", "--engine", "echo", "--benchmark", "arith", "--limit", "2",
           "-k", "2", "-q")
    scored = invoke("score", "--scorer", "smollm2-135m", "--run", "1", "--engine", "hf", "--json", "-q")
    assert scored == {"scorer": "smollm2-135m", "runs": [1], "scored": 4}
    assert invoke("score", "--scorer", "smollm2-135m", "--run", "1", "--engine", "hf", "--json", "-q")["scored"] == 0
    db = create_engine(sqlite_url)
    with db.connect() as conn:
        rows = conn.execute(text(
            "SELECT sc.sample_id, rp.prompt, s.text, sc.sum_logprob, sc.num_tokens FROM scores sc "
            "JOIN samples s ON s.id = sc.sample_id "
            "JOIN run_problems rp ON rp.run_id = s.run_id AND rp.problem_id = s.problem_id "
            "ORDER BY sc.sample_id")).all()
    db.dispose()
    direct = list(hf_engine.score([ScoreRequest(r[0], r[1], r[2]) for r in rows]))
    assert [(r[0], r[4]) for r in rows] == [(d.key, d.num_tokens) for d in direct]
    assert all(r[3] == pytest.approx(d.sum_logprob, rel=1e-4) and r[3] < 0 for r, d in zip(rows, direct, strict=True))


def test_completion_fields(whole) -> None:
    reasons = {c.finish_reason for c in whole.values()}
    assert reasons == {"length", "stop"}  # "Say hi." ends within 24 tokens, the colors do not
    for c in whole.values():
        if c.finish_reason == "length":
            assert c.num_tokens == CONFIG.max_tokens
        else:  # the end-of-turn token is counted, as vLLM counts it, but not shown
            assert 1 <= c.num_tokens < CONFIG.max_tokens
            assert "<|im_end|>" not in c.text
        assert c.cumulative_logprob is not None and math.isfinite(c.cumulative_logprob)
        assert c.cumulative_logprob < 0
        assert c.prompt_tokens is not None and c.prompt_tokens > 10  # the prompt's tokens, the sample's prefill


def test_max_model_len_caps_the_completion(cache_dir: Path, hf_engine) -> None:
    from boundary.workers.engines.hf.engine import TransformersEngine

    (p,) = prompts(hf_engine)[1:2]
    prompt_tokens = len(hf_engine.tokenizer(p)["input_ids"])
    capped = TransformersEngine(hf_engine.model, hf_engine.tokenizer, hf_engine.options)
    capped.max_model_len = prompt_tokens + 5
    (c,) = capped.generate([GenerationRequest("m", p, 1, 0, 1)], CONFIG)
    assert (c.finish_reason, c.num_tokens) == ("length", 5)


def test_progress_counts_every_sample(hf_engine) -> None:
    seen: list[int] = []
    ps = prompts(hf_engine)
    config = SamplingConfig(temperature=1.0, top_p=1.0, max_tokens=4, seed=0)
    requests = [GenerationRequest(i, p, i, 0, 2) for i, p in enumerate(ps)]
    assert len(list(hf_engine.generate(requests, config, seen.append))) == 6
    assert seen == [1] * 6


@pytest.mark.parametrize(
    "options",
    [{"tensor_parallel_size": 2}, {"dtype": "float8"}, {"batch_size": 0}, {"batch_size": "many"}, {"device": "tpu9"}],
)
def test_bad_options_are_config_errors(cache_dir: Path, options: dict) -> None:
    pytest.importorskip("torch")
    from boundary.workers.engines.hf.engine import TransformersEngine

    with pytest.raises(ConfigError):
        TransformersEngine.load(ALIASES["smollm2-135m"], options, cache_dir)
