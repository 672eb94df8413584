"""The progress bars' rate and time left, and what the pass@k and status tables show."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from boundary.api.analysis.report import RunReport
from boundary.api.render.console import PhaseBars, passk_table, phase_rate, status_table
from boundary.api.samplers import sampler_spec
from boundary.api.status import RunStatus


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_after_a_long_wait_reads_as_the_average_rate() -> None:
    """vLLM finishes a batch of samples in one step: 40 samples after 192 s is 0.2 samples/s,
    not the thousands per second that the last few updates alone would say."""
    clock = Clock()
    progress = Progress(get_time=clock, disable=True)
    task_id = progress.add_task("sampling", total=80)
    assert phase_rate(progress.tasks[task_id]) == ("", "-:--:--")
    clock.now = 192.0
    progress.advance(task_id, 39)
    clock.now = 192.001
    progress.advance(task_id, 1)
    assert progress.tasks[task_id].speed >= 999  # what the bar used to print
    rate, eta = phase_rate(progress.tasks[task_id])
    assert rate == "0.2/s"
    assert eta == "0:03:12"  # 40 more at that pace


def test_bars_show_the_rate_and_time_left() -> None:
    bars = PhaseBars(enabled=False)
    with bars:
        advance = bars("grading", 10)
        advance(10)
        task = bars._progress.tasks[0]
        assert task.completed == 10 and task.fields["rate"].endswith("/s") and task.fields["eta"] == "0:00:00"


def rendered(table) -> str:
    console = Console(width=250, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def report(run_id: int, sampler: str = "plain", options: dict | None = None, tokens: float | None = 12.0) -> RunReport:
    spec = sampler_spec(sampler, options)
    return RunReport(run_id=run_id, model="smol", role="base", benchmark="arith", benchmark_version=1,
                     template="boxed", engine="echo", temperature=0.25 if sampler != "plain" else 0.6, top_p=1.0,
                     max_tokens=128, seed=0, n=4, problems=10, samples=40, graded=40, correct=4, partial=False,
                     pass_at_k={1: 0.1, 2: 0.15, 4: 0.2}, sampler=spec.name, sampler_options=dict(spec.options),
                     mean_decoded_tokens=tokens, mean_engine_calls=1.0)


def test_passk_table_shows_the_sampler_and_tokens_per_sample() -> None:
    text = rendered(passk_table([report(1), report(2, "power-mcmc", {"block_tokens": 32, "mcmc_steps": 2}, 1234.4),
                                 report(3, "power-smc", {"particles": 8}, None)]))
    header = next(line for line in text.splitlines() if "tok/sample" in line)
    assert header.index("sampler") < header.index(" T ") < header.index("tok/sample") < header.index("status")
    rows = {line.split()[1]: line for line in text.splitlines() if line.split()[1:2] in (["1"], ["2"], ["3"])}
    assert "plain" in rows["1"] and "12.0" in rows["1"]
    assert "power-mcmc block_tokens=32 mcmc_steps=2" in rows["2"] and "1,234" in rows["2"]
    assert "power-smc particles=8" in rows["3"] and " - " in rows["3"]  # a cost nobody counted


def test_status_table_shows_the_sampler_label() -> None:
    spec = sampler_spec("power-smc", {"particles": 8})
    status = RunStatus(run_id=7, model="smol", role="base", benchmark="arith v1", temperature=0.25, template="boxed",
                       n=4, problems=10, expected=40, sampled=40, graded=40, correct=4, failed_problems=0,
                       samples_per_s=0.0, sampler=spec.label())
    assert "power-smc particles=8" in rendered(status_table([status]))
    assert status.to_dict()["sampler"] == "power-smc particles=8"
