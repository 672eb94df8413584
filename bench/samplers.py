"""Power samplers: (a) boundary's orchestration overhead, (b) tokens per final sample against the
reference's analytic expectation.

(a) Each power sampler runs through what `boundary run` does to sample (the run registered in
SQLite, the missing work derived from the database, the chains driven, every sample written),
while every engine call it makes is recorded. The recorded calls (the same contexts, lengths and
seeds, in the same batches) are then replayed straight on the engine's token-level interface:
the same engine generating the same tokens in plain calls, with nothing of boundary around it.
The ratio of the two decode rates is boundary's efficiency (target >= 0.85, goal 0.95). After one
uncounted warm-up of each, the two are measured alternately, ``--rounds`` times each; medians are
reported.

(b) For power-mcmc, the tokens decoded per final sample are printed beside the two analytic
expectations for a generation of the sample's own length L: the discrete-block count (each
block decodes its tokens, then each of K steps regenerates (t + 1) / 2 of the t tokens so far)
and the paper's Eq. 12, K L^2 / (4 B) (Karan & Du 2025).

    python bench/samplers.py [--engine hf] [--problems 8] [-k 2] [--max-tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from boundary.api.benchmarks import LoadedBenchmark, arith
from boundary.api.config import default_cache_dir
from boundary.api.db import Database, schema
from boundary.api.models import resolve_model
from boundary.api.prompts import get_template
from boundary.api.runs import RunSpec, register
from boundary.api.samplers import mcmc_tokens_discrete, mcmc_tokens_paper, sampler_spec
from boundary.api.types import Continuation, Extension, Proposal, SamplingConfig, TokenEngine
from boundary.workers.engines import open_engine
from boundary.workers.work.sampling import sample_problems


class Recording:
    """The engine as boundary sees it, with its token-level interface recording every call."""

    def __init__(self, engine, tokens: TokenEngine):
        self.engine, self.tokens = engine, tokens
        self.name = engine.name
        self.calls: list[tuple[list[Extension], Proposal]] = []
        self.decoded = 0

    def render_chat(self, messages):
        return self.engine.render_chat(messages)

    def token_engine(self) -> Recording:
        return self

    @property
    def stop_ids(self):
        return self.tokens.stop_ids

    @property
    def max_context(self):
        return self.tokens.max_context

    def encode(self, prompt: str) -> list[int]:
        return self.tokens.encode(prompt)

    def decode(self, tokens: Sequence[int]) -> str:
        return self.tokens.decode(tokens)

    def extend(self, requests: Sequence[Extension], proposal: Proposal) -> list[Continuation]:
        self.calls.append((list(requests), proposal))
        out = self.tokens.extend(requests, proposal)
        self.decoded += sum(len(c.tokens) for c in out)
        return out


def through_boundary(engine, spec: RunSpec, workdir: Path, round_no: int) -> tuple[float, Recording, Database, int]:
    template = get_template(spec.template, "math")
    db = Database.connect(f"sqlite:///{workdir / f'{spec.sampler.name}-{round_no}.db'}")
    recording = Recording(engine, engine.token_engine())
    start = time.perf_counter()
    with db.session() as session:
        run_id, ids = register(session, spec, spec.benchmark.problems, lambda p: template.render(p))
    sample_problems(db, recording, run_id, [ids[p.key] for p in spec.benchmark.problems])
    return time.perf_counter() - start, recording, db, run_id


def replay(tokens: TokenEngine, calls: list[tuple[list[Extension], Proposal]]) -> tuple[float, int]:
    start = time.perf_counter()
    decoded = sum(len(c.tokens) for requests, proposal in calls for c in tokens.extend(requests, proposal))
    return time.perf_counter() - start, decoded


def mcmc_figures(db: Database, run_id: int, block: int, steps: int) -> tuple[float, float, float, float]:
    """Mean final length, tokens decoded, discrete-block and paper expectations per sample."""
    with db.session() as session:
        rows = session.query(schema.Sample.num_tokens, schema.Sample.decoded_tokens).filter_by(run_id=run_id).all()
    lengths = [r[0] for r in rows]
    return (statistics.mean(lengths), statistics.mean(r[1] for r in rows),
            statistics.mean(mcmc_tokens_discrete(n, block, steps) for n in lengths),
            statistics.mean(mcmc_tokens_paper(n, block, steps) for n in lengths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="hf", help="hf (default), vllm or echo")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("-k", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--block-tokens", type=int, default=32)
    parser.add_argument("--mcmc-steps", type=int, default=2)
    parser.add_argument("--particles", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    model = resolve_model(args.model)
    engine = open_engine(args.engine, model, {}, default_cache_dir(), tokens=True)
    tokens = engine.token_engine()
    bench = LoadedBenchmark("arith", "math", "generated:arith", tuple(arith.problems()[: args.problems]))
    samplers = {
        "power-mcmc": sampler_spec("power-mcmc", {"block_tokens": args.block_tokens, "mcmc_steps": args.mcmc_steps}),
        "power-smc": sampler_spec("power-smc", {"block_tokens": args.block_tokens, "particles": args.particles}),
    }
    print(f"engine {args.engine} on {model.name}: {args.problems} problems x k={args.k}, max {args.max_tokens} tokens, "
          f"blocks of {args.block_tokens}; {args.rounds} rounds each, alternating")
    with tempfile.TemporaryDirectory() as tmp:
        for name, sampler in samplers.items():
            proposal = sampler.proposal()
            config = SamplingConfig(proposal.temperature, proposal.top_p, args.max_tokens, 0)
            spec = RunSpec(model, bench, config, "boxed", args.engine, args.k, {}, sampler)
            ours, theirs, decoded = [], [], 0
            _, warm, warm_db, _ = through_boundary(engine, spec, Path(tmp), -1)  # first calls allocate: not counted
            replay(tokens, warm.calls)
            warm_db.dispose()
            for round_no in range(args.rounds):
                elapsed, recording, db, run_id = through_boundary(engine, spec, Path(tmp), round_no)
                replayed, replay_decoded = replay(tokens, recording.calls)
                assert replay_decoded == recording.decoded or args.engine == "vllm", "the replay drew other tokens"
                decoded = recording.decoded
                ours.append(decoded / elapsed)
                theirs.append(replay_decoded / replayed)
                if round_no < args.rounds - 1:
                    db.dispose()
            ratio = statistics.median(ours) / statistics.median(theirs)
            calls = len(recording.calls)
            print(f"\n{sampler.describe()}")
            print(f"  decoded {decoded} tokens in {calls} engine calls per round")
            print(f"  through boundary: {statistics.median(ours):8.1f} tokens/s   replayed on the engine: "
                  f"{statistics.median(theirs):8.1f} tokens/s   ratio {ratio:.3f} (target >= 0.85, goal 0.95)")
            if name == "power-mcmc":
                length, measured, discrete, paper = mcmc_figures(db, run_id, args.block_tokens, args.mcmc_steps)
                print(f"  tokens per final sample (mean length L = {length:.1f}): measured {measured:.1f} "
                      f"({measured / length:.2f}x L), discrete-block count {discrete:.1f} ({discrete / length:.2f}x), "
                      f"paper K L^2 / 4B {paper:.1f} ({paper / length:.2f}x)")
            db.dispose()
    engine.close()


if __name__ == "__main__":
    main()
