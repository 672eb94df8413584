"""Scoring samples under a model (the perplexity analysis): in this process with the real
vLLM engine, and through the fleet's score.<model> queue and a `boundary worker score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from boundary.api.cli import cli
from tests.support.fleet import Fleet, wait_until, write_experiment


def invoke(*args: str):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.slow
def test_vllm_scores_a_runs_samples_as_the_sampler_did(vllm_engine, sqlite_url: str) -> None:
    invoke("run", "--model", "smollm2-135m", "--benchmark", "arith", "--limit", "2", "-k", "3", "--max-tokens", "24",
           "--temperature", "1.0", "-q", "--database-url", sqlite_url)
    scored = json.loads(invoke("score", "--scorer", "smollm2-135m", "--run", "1", "--json", "-q",
                               "--database-url", sqlite_url).stdout)
    assert scored["scored"] == 6
    again = json.loads(invoke("score", "--scorer", "smollm2-135m", "--run", "1", "--json", "-q",
                              "--database-url", sqlite_url).stdout)
    assert again["scored"] == 0  # idempotent: nothing left to score
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT s.cumulative_logprob, s.num_tokens, s.finish_reason, sc.sum_logprob, sc.num_tokens "
            "FROM samples s JOIN scores sc ON sc.sample_id = s.id")).all()
    engine.dispose()
    assert len(rows) == 6
    for cumulative, tokens, finish, scored_logprob, scored_tokens in rows:
        assert scored_logprob < 0 and 0 < scored_tokens <= tokens + 2
        # the sampler's own log-probability of the same text, up to re-tokenization and the EOS token
        assert abs(scored_logprob - cumulative) < 0.25 * tokens + 1.0, (cumulative, scored_logprob, finish)
    report = json.loads(invoke("report", "perplexity", "--scorer", "smollm2-135m", "--json",
                               "--database-url", sqlite_url).stdout)
    assert report[0]["own"] and report[0]["samples"] == 6 and 1.0 < report[0]["median"] < 1000


def test_scoring_through_the_fleet(fleet: Fleet, tmp_path: Path) -> None:
    exp = write_experiment(tmp_path / "ppl.yaml", "ppl", n=4, limit=3, batch_size=8)
    assert fleet.cli("submit", str(exp)).returncode == 0
    fleet.start("sample", "--model", "ppl-base", "--engine", "echo")
    fleet.start("sample", "--model", "ppl-rl", "--engine", "echo")
    fleet.start("grade", "--concurrency", "1")
    wait_until(fleet.complete, 60, "the runs to complete\n" + fleet.log())
    queued = fleet.cli("score", "--scorer", "ppl-base", "--experiment", "ppl", "--json")
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["queue"] == "score.ppl-base"
    fleet.start("score", "--model", "ppl-base", "--engine", "echo")
    wait_until(lambda: fleet.sql("SELECT count(*) FROM scores")[0][0] == 24, 60, "the scores\n" + fleet.log())
    report = json.loads(fleet.cli("report", "perplexity", "--scorer", "ppl-base", "--json").stdout)
    assert {(r["model"], r["own"], r["samples"]) for r in report} == {("ppl-base", True, 12), ("ppl-rl", False, 12)}
    # echo's scorer gives its own kind of text -0.1 per token
    assert all(abs(r["median"] - 2.718281828 ** 0.1) < 1e-6 for r in report)
