"""Every analysis on a hand-built fixture with known answers, on SQLite and PostgreSQL:
pass@k in SQL against numpy, confidence intervals, solvable sets, histograms, the
sampling-efficiency gap, temperature sweeps, perplexity, the lucky-guess audit, exports,
figures and the HTML report (rendered in headless Chromium); and the same with power-sampled runs
beside the plain ones, which every analysis must tell apart."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from boundary.api.analysis.audit import guess_baseline, normalize, review_set
from boundary.api.analysis.bundle import analyse
from boundary.api.analysis.gap import sampling_efficiency_gap
from boundary.api.analysis.histogram import accuracy_bin, histograms
from boundary.api.analysis.passk import passk_table, per_problem, with_confidence
from boundary.api.analysis.perplexity import perplexities
from boundary.api.analysis.runs import run_infos
from boundary.api.analysis.solvable import solvable_sets
from boundary.api.analysis.temperature import sweeps
from boundary.api.cli import cli
from boundary.api.db import Database, schema
from boundary.api.errors import ConfigError
from boundary.api.samplers import sampler_spec
from tests.support.passk import numpy_reference

ANSWERS = ["1", "1", "7", "3", "5"]  # problem p2's answer is the answer wrong samples give everywhere
CORRECT = {
    "base-0.6": [0, 2, 8, 0, 1],
    "rl-0.6": [0, 8, 8, 4, 0],
    "base-1.0": [1, 3, 6, 0, 2],
}
N = 8


def build(db: Database, partial: bool = False) -> dict[str, int]:
    """Two models (base, rlvr), the base at two temperatures; problem i of run r has
    CORRECT[r][i] correct samples of N. Wrong samples answer 7. The base model scores both
    its own samples (log-prob -1 per token) and the RL samples (-2 per token)."""
    runs = {}
    with db.session() as s:
        base = schema.Model(name="base", path="/m/base", source="/m/base", role="base")
        rl = schema.Model(name="rl", path="/m/rl", source="/m/rl", role="rlvr")
        bench = schema.Benchmark(name="toy", version=1, kind="math", source="t", content_hash="h", num_problems=5)
        s.add_all([base, rl, bench])
        s.flush()
        problems = []
        for i, answer in enumerate(ANSWERS):
            p = schema.Problem(benchmark_id=bench.id, position=i, key=f"p{i}", question=f"question {i}?", answer=answer,
                               record={}, content_hash=str(i))
            s.add(p)
            problems.append(p)
        s.flush()
        for name, correct in CORRECT.items():
            model = base if name.startswith("base") else rl
            run = schema.Run(model_id=model.id, benchmark_id=bench.id, temperature=float(name.split("-")[1]),
                             top_p=0.95, max_tokens=64, n=N, seed=0, prompt_template="boxed", engine="vllm",
                             engine_options={})
            s.add(run)
            s.flush()
            runs[name] = run.id
            for p, c in zip(problems, correct):
                s.add(schema.RunProblem(run_id=run.id, problem_id=p.id, prompt=f"PROMPT {p.key}", seed=0))
                for j in range(N):
                    right = j < c
                    text = f"so the answer is \\boxed{{{p.answer if right else 7}}}"
                    sample = schema.Sample(run_id=run.id, problem_id=p.id, sample_index=j, text=text, num_tokens=5)
                    s.add(sample)
                    s.flush()
                    if partial and name == "rl-0.6" and p.key == "p4" and j >= 4:
                        continue
                    s.add(schema.Verdict(sample_id=sample.id, run_id=run.id, problem_id=p.id, correct=right,
                                         extracted_answer=p.answer if right else "7", grader="g", grader_version="1",
                                         duration_s=0.0))
                    if name != "base-1.0":
                        s.add(schema.Score(sample_id=sample.id, scorer_id=base.id, run_id=run.id,
                                           sum_logprob=(-1.0 if model is base else -2.0) * 5, num_tokens=5))
    return runs


@pytest.fixture
def fixture(database: Database) -> tuple[Database, dict[str, int]]:
    return database, build(database)


def expected_passk(correct: list[int], k: int) -> float:
    return float(np.mean([numpy_reference(N, c, k) for c in correct]))


def test_passk_in_sql_equals_numpy(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        table = passk_table(s, list(runs.values()))
    assert len(table) == 3 * 4  # k = 1, 2, 4, 8 for each run
    for row in table:
        name = next(n for n, rid in runs.items() if rid == row.run_id)
        assert row.value == pytest.approx(expected_passk(CORRECT[name], row.k), abs=1e-9)
        assert row.problems == 5
    with db.session() as s:
        (one,) = passk_table(s, [runs["rl-0.6"]], [3])
        assert one.value == pytest.approx(expected_passk(CORRECT["rl-0.6"], 3), abs=1e-9)


def test_k_beyond_the_samples_names_the_largest_k(fixture) -> None:
    db, runs = fixture
    with db.session() as s, pytest.raises(
        ConfigError, match=f"k=9 is larger than run {runs['rl-0.6']} allows: the largest possible k is 8"
    ):
        passk_table(s, [runs["rl-0.6"]], [9])


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        first = with_confidence(s, [runs["base-0.6"]], resamples=400)
        again = with_confidence(s, [runs["base-0.6"]], resamples=400)
        values = per_problem(s, [runs["base-0.6"]])
    assert first == again
    for row in first:
        assert row.ci_low <= row.value <= row.ci_high
        assert row.ci_low >= min(values[(row.run_id, row.k)].values()) - 1e-12
    assert first[-1].ci_low < first[-1].ci_high  # coverage 3/5 varies across resamples


def test_solvable_sets(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        same_t = solvable_sets(s, [runs["base-0.6"], runs["rl-0.6"]])
        all_runs = solvable_sets(s, list(runs.values()))
    assert (same_t.both, same_t.only_first, same_t.only_second, same_t.neither) == (
        ["p1", "p2"], ["p4"], ["p3"], ["p0"])
    assert same_t.coverage("base") == pytest.approx(3 / 5) and same_t.coverage("rlvr") == pytest.approx(3 / 5)
    # at T=1.0 the base model also solves p0 once: over all runs, p0 is base-only
    assert all_runs.only_first == ["p0", "p4"] and all_runs.neither == []
    with db.session() as s, pytest.raises(ConfigError, match="no graded run of a 'distilled' model"):
        solvable_sets(s, list(runs.values()), "base", "distilled")


def test_histograms(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        (h,) = histograms(s, [runs["base-0.6"]])
    # accuracies 0, 0.25, 1, 0, 0.125
    assert h.counts == [2, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert (h.never_solved, h.never_solved_share) == (2, pytest.approx(0.4))
    assert [accuracy_bin(10, c) for c in (0, 1, 9, 10)] == [0, 1, 9, 9]


def test_sampling_efficiency_gap(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        gap = sampling_efficiency_gap(s, runs["rl-0.6"], runs["base-0.6"], 8)
    assert gap.rl_pass_at_1 == pytest.approx(20 / 40)  # 0+8+8+4+0 correct of 40
    assert gap.base_pass_at_k == pytest.approx(3 / 5)  # base coverage at k=8
    assert gap.delta == pytest.approx(-0.1)


def test_temperature_sweep_and_envelope(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        (sweep,) = sweeps(s, run_infos(s, list(runs.values())))
    assert sweep.model == "base" and set(sweep.by_temperature) == {0.6, 1.0}
    for k in (1, 2, 4, 8):
        low, high = expected_passk(CORRECT["base-0.6"], k), expected_passk(CORRECT["base-1.0"], k)
        assert sweep.by_temperature[0.6][k] == pytest.approx(low, abs=1e-9)
        value, t = sweep.envelope()[k]
        assert value == pytest.approx(max(low, high), abs=1e-9) and t == (1.0 if high > low else 0.6)


def test_perplexity_of_rl_samples_under_the_base_model(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        base_id = s.query(schema.Model.id).filter_by(name="base").scalar()
        dists = {d.model: d for d in perplexities(s, base_id)}
    assert dists["base"].own and not dists["rl"].own
    assert dists["base"].median == pytest.approx(math.e) and dists["rl"].median == pytest.approx(math.e**2)
    assert dists["rl"].samples == 40


def test_lucky_guess_audit(fixture) -> None:
    db, runs = fixture
    with db.session() as s:
        picked = review_set(s, [runs["base-0.6"]], per_run=4, seed=1)
        same = review_set(s, [runs["base-0.6"]], per_run=4, seed=1)
        k, rows = guess_baseline(s, runs["base-0.6"], 8)
    assert picked == same and len(picked) == 4
    assert all("boxed" in item.completion and item.extracted_answer == item.reference for item in picked)
    by_problem = {r.problem: r for r in rows}
    # 37 of the 40 answers are "7": guessing solves p2 (answer 7) as surely as the model does
    assert by_problem["p2"].guess_probability == pytest.approx(37 / 40)
    assert by_problem["p2"].indistinguishable and by_problem["p2"].chance_pass_at_k > 0.99
    assert by_problem["p1"].guess_probability == pytest.approx(2 / 40)
    assert by_problem["p1"].chance_pass_at_k == pytest.approx(1 - (38 / 40) ** 8)
    assert not by_problem["p1"].indistinguishable and not by_problem["p0"].indistinguishable
    assert normalize("\\boxed{ 18.0 }") == "18" and normalize("$\\frac{1}{2}$") == "\\frac{1}{2}"


def test_partial_runs_are_labelled_partial(database: Database) -> None:
    runs = build(database, partial=True)
    with database.session() as s:
        a = analyse(s, list(runs.values()), resamples=50)
    status = {r.run_id: r.partial for r in a.reports}
    assert status[runs["rl-0.6"]] and not status[runs["base-0.6"]]
    assert max(p.k for p in a.passk if p.run_id == runs["rl-0.6"]) == 4  # p4 has 4 graded samples


def test_the_same_numbers_on_sqlite_and_postgres(tmp_path: Path, postgres_url: str) -> None:
    results = []
    for url in (f"sqlite:///{tmp_path / 'a.db'}", postgres_url):
        db = Database.connect(url, auto_migrate=True)
        runs = build(db)
        with db.session() as s:
            a = analyse(s, list(runs.values()), resamples=200)
        results.append({
            "passk": [(p.k, round(p.value, 12), round(p.ci_low, 12), round(p.ci_high, 12)) for p in a.passk],
            "solvable": {k: v.to_dict() for k, v in a.solvable.items()},
            "hist": [h.to_dict() for h in a.histograms],
            "sweeps": [s.to_dict() for s in a.sweeps],
            "gaps": [round(g.delta, 12) for g in a.gaps],
            "ppl": sorted((d.model, round(d.median, 12)) for d in a.perplexity),
            "guess": {str(i): [g.to_dict() for g in rows] for i, (_, rows) in enumerate(a.guesses.values())},
        })
        db.dispose()
    assert rounded(results[0]) == rounded(results[1])


def rounded(value, digits: int = 12):
    """Floats to 12 digits: the two databases may sum in another order (last-bit differences)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def test_exports(fixture, tmp_path: Path) -> None:
    db, runs = fixture
    url = str(db.engine.url.render_as_string(hide_password=False))
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"samples.{fmt}"
        result = CliRunner().invoke(cli, ["export", "--run", str(runs["rl-0.6"]), "--output", str(out),
                                          "--database-url", url])
        assert result.exit_code == 0, result.output
        if fmt == "csv":
            rows = list(csv.DictReader(out.open()))
        elif fmt == "jsonl":
            rows = [json.loads(line) for line in out.read_text().splitlines()]
        else:
            import pyarrow.parquet as pq

            rows = pq.read_table(out).to_pylist()
        assert len(rows) == 40 and {str(r["run_id"]) for r in rows} == {str(runs["rl-0.6"])}
        assert sum(str(r["correct"]) in ("True", "true") for r in rows) == 20
        assert rows[0]["problem"] == "p0" and rows[0]["reference"] == "1"
    bad = CliRunner().invoke(cli, ["export", "--output", str(tmp_path / "x.xlsx"), "--database-url", url])
    assert bad.exit_code == 1 and "unknown export format 'xlsx'" in bad.stderr


def test_report_commands(fixture, tmp_path: Path) -> None:
    db, runs = fixture
    url = str(db.engine.url.render_as_string(hide_password=False))

    def run(*args: str):
        result = CliRunner().invoke(cli, ["report", "--database-url", url, *args])
        assert result.exit_code == 0, result.output
        return result

    assert json.loads(run("solvable", "--run", str(runs["base-0.6"]), "--run", str(runs["rl-0.6"]),
                          "--json").stdout)["rlvr_only"] == ["p3"]
    assert "-10.0 points" in run("gap", "--rl", str(runs["rl-0.6"]), "--base", str(runs["base-0.6"]), "-k", "8").stdout
    assert json.loads(run("histogram", "--json").stdout)[0]["counts"] == [2, 1, 1, 0, 0, 0, 0, 0, 0, 1]
    assert "best" in run("temperature").stdout
    assert "(own)" in run("perplexity", "--scorer", "base").stdout
    with_ci = json.loads(run("--ci", "--json").stdout)
    assert all(len(r["ci"]) == 4 for r in with_ci)
    bad = CliRunner().invoke(cli, ["report", "--database-url", url, "gap", "--rl", str(runs["rl-0.6"]), "--base",
                                   str(runs["base-0.6"]), "-k", "64"])
    assert bad.exit_code == 1 and "the largest possible k is 8" in bad.stderr
    audited = CliRunner().invoke(cli, ["audit", "--database-url", url, "--per-run", "3",
                                       "--output", str(tmp_path / "r.jsonl")])
    assert audited.exit_code == 0 and len((tmp_path / "r.jsonl").read_text().splitlines()) == 9
    assert "no better than guessing on 1 of 5 problems: p2" in audited.stdout


def test_figures_and_html_report_render_in_chromium(fixture, tmp_path: Path) -> None:
    db, runs = fixture
    url = str(db.engine.url.render_as_string(hide_password=False))
    html, figures = tmp_path / "report.html", tmp_path / "figures"
    result = CliRunner().invoke(cli, ["report", "--database-url", url, "--html", str(html), "--plots", str(figures)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in figures.iterdir())
    assert written == ["accuracy.png", "accuracy.svg", "passk-toy-v1.png", "passk-toy-v1.svg", "temperature-1.png",
                       "temperature-1.svg"]
    assert all((figures / name).stat().st_size > 5000 for name in written)
    page = html.read_text()
    assert page.count('<figure class="plot"') == 3 and page.count("<svg") == 3
    for section in ("pass@k", "Solvable problems", "Per-problem accuracy", "Temperature", "Sampling-efficiency gap",
                    "Perplexity", "Guessing baseline"):
        assert f"<h2>{section}" in page
    for attribute in ("src=", "href=\"http", "@import", "url(http"):
        assert attribute not in page  # nothing fetched from a network

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is missing: scripts/system installs it"
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chrome'}",
                    "--window-size=1200,2600", f"--screenshot={shot}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    assert len(pixels) == 1200 * 2600

    def near(color: str) -> int:
        rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).sum(axis=1) < 40).sum())

    # the base model's blue and the RL model's red lines of the pass@k figure are on screen
    assert near("#1f77b4") > 300 and near("#d62728") > 300


POWER = {
    # differs from base-0.6 only by its sampler (its proposal is the plain run's T and top-p)
    "mcmc-0.6": ("power-mcmc", {"proposal_temperature": 0.6, "top_p": 0.95, "block_tokens": 32}, [1, 4, 8, 2, 1]),
    # the defaults: proposal temperature 1/alpha = 0.25, no truncation
    "smc": ("power-smc", {"particles": 4}, [0, 3, 8, 1, 0]),
}
MCMC_LABEL = "base (T=0.6, power-mcmc proposal_temperature=0.6 block_tokens=32 top_p=0.95)"


def add_power_runs(db: Database) -> dict[str, int]:
    """The base model under power-mcmc and power-smc on the fixture's benchmark, graded like
    ``build``'s runs; sample j of a problem decoded 10 (j + 1) tokens in j + 1 calls."""
    runs = {}
    with db.session() as s:
        base = s.query(schema.Model).filter_by(name="base").one()
        bench = s.query(schema.Benchmark).filter_by(name="toy").one()
        problems = s.query(schema.Problem).order_by(schema.Problem.position).all()
        for name, (sampler, options, correct) in POWER.items():
            spec = sampler_spec(sampler, options)
            proposal = spec.proposal()
            run = schema.Run(model_id=base.id, benchmark_id=bench.id, temperature=proposal.temperature,
                             top_p=proposal.top_p, max_tokens=64, n=N, seed=0, prompt_template="boxed",
                             engine="vllm", engine_options={}, sampler=spec.name, sampler_options=spec.canonical())
            s.add(run)
            s.flush()
            runs[name] = run.id
            for p, c in zip(problems, correct):
                s.add(schema.RunProblem(run_id=run.id, problem_id=p.id, prompt=f"PROMPT {p.key}", seed=0))
                for j in range(N):
                    right = j < c
                    stats = ({"proposals": 2, "accepted": j % 3, "acceptance_rate": (j % 3) / 2}
                             if sampler == "power-mcmc" else {"particles": 4, "resamples": j, "final_ess": 3.5})
                    sample = schema.Sample(run_id=run.id, problem_id=p.id, sample_index=j, text="\\boxed{7}",
                                           num_tokens=5, decoded_tokens=10 * (j + 1), prefill_tokens=None,
                                           engine_calls=j + 1, sampler_stats=stats)
                    s.add(sample)
                    s.flush()
                    s.add(schema.Verdict(sample_id=sample.id, run_id=run.id, problem_id=p.id, correct=right,
                                         extracted_answer=p.answer if right else "7", grader="g", grader_version="1",
                                         duration_s=0.0))
    return runs


@pytest.fixture
def with_power(database: Database) -> tuple[Database, dict[str, int]]:
    runs = build(database)
    return database, {**runs, **add_power_runs(database)}


def test_runs_that_differ_only_by_sampler_read_apart_everywhere(with_power) -> None:
    db, runs = with_power
    with db.session() as s:
        infos = run_infos(s, list(runs.values()))
        a = analyse(s, list(runs.values()), resamples=50)
    label = {r.run_id: r.label for r in infos}
    assert label[runs["base-0.6"]] == "base (T=0.6)"  # plain runs keep their label
    assert label[runs["mcmc-0.6"]] == MCMC_LABEL
    assert label[runs["smc"]] == "base (T=0.25, power-smc particles=4)"
    assert len(set(label.values())) == len(runs)
    # the temperature sweep is the plain runs' only: the power run at T=0.6 does not replace base-0.6's row
    (sweep,) = a.sweeps
    assert set(sweep.by_temperature) == {0.6, 1.0}
    assert sweep.by_temperature[0.6][1] == pytest.approx(expected_passk(CORRECT["base-0.6"], 1), abs=1e-9)
    # the gap: the plain base run at the RL run's temperature, and every power-sampled base run
    assert sorted((g.rl_run, g.base_run) for g in a.gaps) == sorted(
        (runs["rl-0.6"], runs[b]) for b in ("base-0.6", "mcmc-0.6", "smc"))
    smc_gap = next(g for g in a.gaps if g.base_run == runs["smc"])
    assert smc_gap.base_pass_at_k == pytest.approx(expected_passk(POWER["smc"][2], 8), abs=1e-9)
    # figures: one legend entry per run, all distinct
    from boundary.api.render import plots

    bench_runs, table = a.on_benchmark("toy v1")
    legend = [t.get_text() for t in plots.passk_curves("toy v1", bench_runs, table).axes[0].get_legend().get_texts()]
    assert len(legend) == len(set(legend)) == len(runs) and f"{MCMC_LABEL} [base]" in legend
    from boundary.api.render import text

    lines = text.histograms(a.runs, a.histograms).splitlines()
    assert any(line.startswith(MCMC_LABEL) for line in lines)
    assert len({len(line.rsplit("  ", 1)[0]) for line in lines[1:]}) == 1  # columns stay aligned


def test_the_html_report_shows_each_runs_sampler_and_cost(with_power) -> None:
    db, runs = with_power
    from boundary.api.render import html

    with db.session() as s:
        page = html.render(analyse(s, list(runs.values()), resamples=50))
    runs_table = page.split("<h2>Runs</h2>")[1].split("<h2>")[0]
    for header in ("sampler", "tok/sample", "prefill/sample", "calls/sample", "sampler stats"):
        assert f">{header}</th>" in runs_table
    assert "power-mcmc proposal_temperature=0.6 block_tokens=32 top_p=0.95<br>" in runs_table
    assert "&quot;block_tokens&quot;:32" in runs_table  # the resolved options as stored
    assert '<td class="">45.0</td>' in runs_table  # 10, 20, ..., 80 tokens: 45 per sample
    assert '<td class="">4.5</td>' in runs_table  # 1, 2, ..., 8 engine calls
    assert "acceptance_rate 0.438" in runs_table  # (0 + 1/2 + 1 + 0 + 1/2 + 1 + 0 + 1/2) / 8
    assert "resamples 3.5, final_ess 3.5" in runs_table
    solvable = page.split("<h2>Solvable problems</h2>")[1].split("<h2>")[0]
    assert f"run {runs['mcmc-0.6']} {MCMC_LABEL}" in solvable and f"run {runs['smc']} base (T=0.25" in solvable
    gap = page.split("<h2>Sampling-efficiency gap</h2>")[1].split("<h2>")[0]
    assert gap.count("<tr>") == 1 + 3 and MCMC_LABEL in gap


def test_sample_exports_carry_the_sampler_and_the_cost(with_power, tmp_path: Path) -> None:
    db, runs = with_power
    url = str(db.engine.url.render_as_string(hide_password=False))
    read = {}
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"samples.{fmt}"
        result = CliRunner().invoke(cli, ["export", "--run", str(runs["mcmc-0.6"]), "--run", str(runs["rl-0.6"]),
                                          "--output", str(out), "--database-url", url])
        assert result.exit_code == 0, result.output
        if fmt == "csv":
            read[fmt] = list(csv.DictReader(out.open()))
        elif fmt == "jsonl":
            read[fmt] = [json.loads(line) for line in out.read_text().splitlines()]
        else:
            import pyarrow.parquet as pq

            read[fmt] = pq.read_table(out).to_pylist()
    spec = sampler_spec(*POWER["mcmc-0.6"][:2])
    for fmt, rows in read.items():
        power = [r for r in rows if str(r["run_id"]) == str(runs["mcmc-0.6"])]
        plain = [r for r in rows if str(r["run_id"]) == str(runs["rl-0.6"])]
        assert len(power) == len(plain) == 40
        assert power[3]["sampler"] == "power-mcmc" and json.loads(power[3]["sampler_options"]) == dict(spec.options)
        assert str(power[3]["decoded_tokens"]) == "40" and str(power[3]["engine_calls"]) == "4"
        assert power[3]["prefill_tokens"] in (None, "")  # not counted
        stats = power[3]["sampler_stats"] if fmt == "jsonl" else json.loads(power[3]["sampler_stats"])
        assert stats == {"proposals": 2, "accepted": 0, "acceptance_rate": 0.0}
        assert plain[0]["sampler"] == "plain" and plain[0]["sampler_options"] == "{}"
        assert plain[0]["sampler_stats"] in (None, "")
    assert isinstance(read["jsonl"][0]["sampler_options"], str)  # the run's stored JSON text in every format
