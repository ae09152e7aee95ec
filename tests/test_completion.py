"""Progress counted from events (lth_tui/completion.py), for trials one by one and batched."""

from __future__ import annotations

from lth_tui.completion import Completion
from lth_tui.progress import ProgressView

ITS = 100


def _start(trials: int = 3, rounds: int = 2, rounds_done: int = 0, parallel: bool = False) -> dict:
    return {"event": "run_start", "trials": trials, "rounds": rounds, "iterations": ITS, "rounds_done": rounds_done,
            "parallel_trials": parallel}


def _round(t: int, r: int, evals=(0, 50, 100)) -> list[dict]:
    events = [{"event": "round_start", "trial": t, "round": r, "weights_remaining": 0.8 ** r}]
    events += [{"event": "eval", "trial": t, "round": r, "iteration": it, "test_accuracy": 0.9} for it in evals]
    return events + [{"event": "round_end", "trial": t, "round": r}]


def _feed(count: Completion, events: list[dict]) -> list[int]:
    seen = []
    for event in events:
        count.feed(event)
        seen.append(count.done)
    return seen


def test_trial_major_counts_rounds_in_order() -> None:
    count = Completion()
    events = [_start()] + [e for t in range(3) for r in range(2) for e in _round(t, r)]
    seen = _feed(count, events)
    assert count.total == 600 and seen[-1] == 600 and seen == sorted(seen)
    count = Completion()
    _feed(count, [_start()] + _round(0, 0) + _round(0, 1) + _round(1, 0)[:3])  # trial 1, round 0, iteration 50
    assert count.done == 2 * ITS + 50


def test_batched_trials_count_every_trial_in_flight() -> None:
    """Round-major events: all trials' round 0 at once. (trial·rounds + round)·its + it, the
    old formula, put trial 2's first eval at 400 of 600; the count is the sum actually trained."""
    count = Completion()
    events = [_start(parallel=True)]
    events += [{"event": "round_start", "trial": t, "round": 0, "weights_remaining": 1.0} for t in range(3)]
    events += [{"event": "eval", "trial": t, "round": 0, "iteration": it, "test_accuracy": 0.5}
               for it in (0, 50) for t in range(3)]
    _feed(count, events)
    assert count.done == 3 * 50
    _feed(count, [{"event": "round_end", "trial": t, "round": 0} for t in range(3)])
    assert count.done == 3 * ITS and count.fraction == 0.5


def test_resume_starts_from_the_rounds_on_disk_and_late_rewinding_is_clamped() -> None:
    count = Completion()
    _feed(count, [_start()] + _round(0, 0)[:3])
    _feed(count, [_start(rounds_done=1)])  # killed, resumed: round (0, 0) was finished on disk
    assert count.done == ITS
    _feed(count, [{"event": "eval", "trial": 0, "round": 1, "iteration": 250, "test_accuracy": 0.5}])
    assert count.done == 2 * ITS  # a late-rewound round reports iterations k..T; never more than one round
    assert not count.feed({"event": "lmc", "barrier": 0.1})


def test_progress_bar_follows_batched_trials() -> None:
    view = ProgressView(enabled=False)
    view.on_event(_start(parallel=True))
    for t in range(3):
        view.on_event({"event": "round_start", "trial": t, "round": 1, "weights_remaining": 0.8})
        view.on_event({"event": "eval", "trial": t, "round": 1, "iteration": 40, "test_accuracy": 0.7})
    task = view.progress.tasks[0]
    assert task.total == 600 and task.completed == 120
    assert task.fields["where"] == "round 1/1, 3 trials together"
    view = ProgressView(enabled=False)
    view.on_event(_start())
    view.on_event({"event": "round_start", "trial": 1, "round": 0, "weights_remaining": 1.0})
    assert view.progress.tasks[0].fields["where"] == "trial 2/3 round 0/1"


def test_progress_view_prints_run_warnings(capsys) -> None:
    view = ProgressView(enabled=True)
    with view:
        view.on_event(_start())
        view.on_event({"event": "warning", "message": "train.bf16 on a CPU: slower"})
    assert "warning: train.bf16 on a CPU: slower" in capsys.readouterr().err
