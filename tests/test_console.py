"""The progress bars' rate and time left."""

from __future__ import annotations

from rich.progress import Progress

from boundary.api.render.console import PhaseBars, phase_rate


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
