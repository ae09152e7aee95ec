"""Tab 3, Train: loss and accuracy against iteration of one round, for one trial or mean ± std
over the trials of the round. It follows the latest round unless the user picked one ([ ]);
t toggles one trial / the mean (by default the mean once the run stopped).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

from engine.records import mean_std
from lth_tui.components.plot import PlotSpec, PlotView, Series
from lth_tui.screens.run_tabs.base import RunTab
from lth_tui.viewmodel import EXTRA_COLORS, MAIN_COLOR, OVERLAY_COLOR, Shown

__all__ = ["TrainingTab"]


class TrainingTab(RunTab):
    tab_id = "tab-training"
    title = "Train"
    key = "3"
    help = "Training"

    def __init__(self) -> None:
        super().__init__()
        self.pick: tuple[int, int] | None = None  # (trial, round) picked with [ ]; None: follow the latest
        self.mean: bool | None = None  # pool the trials; None: when the run is not running

    def compose(self) -> ComposeResult:
        yield Static("", id="train-title", classes="view-title")
        with Horizontal(id="train-plots"):
            yield PlotView(id="loss-plot")
            yield PlotView(id="acc-plot")

    def reset(self, shown: Shown) -> None:
        super().reset(shown)
        self.pick, self.mean = None, None

    def train_round(self) -> tuple[int, int] | None:
        """The (trial, round) shown: the picked one while it exists, else the latest evaluated."""
        model = self.shown.model
        if model is None:
            return None
        if self.pick is not None and self.pick in model.evals:
            return self.pick
        keys = sorted(model.evals)
        return keys[-1] if keys else None

    def train_mean(self) -> bool:
        """Whether the curves pool the trials (t toggles; by default once the run stopped)."""
        if self.mean is not None:
            return self.mean
        return self.shown.model is not None and self.shown.model.state != "running"

    def step(self, step: int) -> None:
        """[ ]: the previous / next evaluated (trial, round); the latest one follows the run again."""
        model = self.shown.model
        if model is None or not model.evals:
            return
        keys = sorted(model.evals)
        current = self.train_round()
        i = keys.index(current) if current in keys else len(keys) - 1
        i = max(0, min(len(keys) - 1, i + step))
        self.pick = None if i == len(keys) - 1 else keys[i]
        self.draw()

    def toggle_mean(self) -> None:
        self.mean = not self.train_mean()
        self.draw()

    def update(self, shown: Shown, dirty: set[str]) -> None:
        super().update(shown, dirty)
        if shown.model is not None and "train" in dirty:
            self.draw()

    def draw(self) -> None:
        model = self.shown.model
        if model is None:
            return
        key = self.train_round()
        title = self.query_one("#train-title", Static)
        if key is None:
            title.update("training curves appear with the first evaluation")
            spec = PlotSpec(empty_message="no evaluation yet")
            self.query_one("#loss-plot", PlotView).set_plot(spec)
            self.query_one("#acc-plot", PlotView).set_plot(spec)
            return
        t, r = key
        latest = self.pick is None
        wr = model.weights.get(key)
        pooled = sorted(tt for (tt, rr) in model.evals if rr == r)
        mean_mode = self.train_mean() and len(pooled) > 1
        runs = [model.evals[(tt, r)] for tt in pooled] if mean_mode else [model.evals[key]]
        who = f"round {r} · mean ± std over {len(pooled)} trials" if mean_mode else f"trial {t + 1} · round {r}"
        hint = "; t: one trial" if mean_mode else ("; t: mean over trials" if len(pooled) > 1 else "")
        title.update(Text.assemble((who, "bold"), (f" · {100 * wr:.1f}% weights" if wr is not None else "", ""),
                                   (f"  ({'latest' if latest else 'picked'}; [ ] other rounds{hint})", "dim")))
        losses = tuple(s for s in (_series(runs, "train_loss", "train loss", MAIN_COLOR),
                                   _series(runs, "val_loss", "val loss", OVERLAY_COLOR)) if s)
        accs = tuple(s for s in (_series(runs, "val_accuracy", "val acc", EXTRA_COLORS[0], 100.0),
                                 _series(runs, "test_accuracy", "test acc", EXTRA_COLORS[1], 100.0),
                                 _series(runs, "sampled_test_accuracy", "sampled mask", MAIN_COLOR, 100.0)) if s)
        self.query_one("#loss-plot", PlotView).set_plot(PlotSpec(title="loss", xlabel="iteration", ylabel="loss",
                                                                 series=losses, empty_message="no loss yet"))
        self.query_one("#acc-plot", PlotView).set_plot(PlotSpec(title="accuracy (%)", xlabel="iteration", ylabel="%",
                                                                series=accs, empty_message="no accuracy yet"))


def _series(runs: list[dict[int, dict[str, Any]]], name: str, label: str, color: str,
            scale: float = 1.0) -> Series | None:
    """Mean ± std over the shown trials at the iterations they all evaluated."""
    iterations = sorted(set.intersection(*({i for i, p in ev.items() if p.get(name) is not None} for ev in runs)))
    if not iterations:
        return None
    stats = [mean_std(ev[i][name] for ev in runs) for i in iterations]
    nan = float("nan")  # a diverged loss: no point there, as before
    return Series(f"{label} (n={len(runs)})", x=tuple(float(i) for i in iterations),
                  y=tuple(nan if s.mean is None else scale * s.mean for s in stats),
                  yerr=tuple(nan if s.std is None else scale * s.std for s in stats), color=color)
