"""A run (or a sweep group) as TensorBoard event files, read only from the run store.

Layout under the output folder, one TensorBoard "run" per folder:

    <run-id>/trial-<t>/round-<r>/   train/loss, val/loss, val/accuracy, test/loss, test/accuracy, lr
                                    against the iteration (global_iteration for mask-training runs,
                                    so their segments follow each other)
    <run-id>/sparsity/              the sparsity curve: sparsity/test_accuracy (at early stop, mean
                                    over trials), sparsity/test_accuracy_final, sparsity/supermask_accuracy
                                    against step = weights remaining in basis points (10000 = dense),
                                    and by_round/* (weights_remaining, test_accuracy, early_stop_iteration)
                                    against the round; the config as text
    <run-id>/trial-<t>/sparsity/    the same per trial, when the run has several
    <run-id>/                       for a sweep group: the swept keys as hparams, with metrics
                                    hparam/best_test_accuracy, hparam/weights_remaining_at_best,
                                    hparam/last_test_accuracy, hparam/last_weights_remaining

tensorboardX writes the files (numpy and protobuf; much lighter than tensorboard itself) and is
imported only here, so the md/json/csv exports never load it. Everything is written into a
fresh private folder inside the output folder first and renamed into place run by run, so no
file is ever opened through a symlink someone planted in a run dir, and a re-export replaces
the old event files instead of doubling every curve.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from engine.experiments import experiment_of
from engine.layout import RunLayout, round_name, trial_name
from engine.records import CurvePoint, EvalPoint, RoundRecord, Summary
from engine.store import StoreError, iter_round_dirs, read_bytes, read_config, read_evals, read_events, read_summary
from lth_tui.export import ExportError

EVAL_TAGS = {"train_loss": "train/loss", "val_loss": "val/loss", "val_accuracy": "val/accuracy",
             "test_loss": "test/loss", "test_accuracy": "test/accuracy", "lr": "lr"}
SPARSITY_TAGS = {"test_accuracy": "sparsity/test_accuracy", "test_accuracy_final": "sparsity/test_accuracy_final",
                 "supermask_accuracy": "sparsity/supermask_accuracy"}
BASIS_POINTS = 10_000


def sparsity_step(weights_remaining: float) -> int:
    """TensorBoard steps are integers: weights remaining in basis points (10000 = dense, 100 = 1%)."""
    return int(round(BASIS_POINTS * float(weights_remaining)))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _round_evals(run_dir: Path) -> dict[tuple[int, int], list[EvalPoint]]:
    """(trial, round) -> evaluations: evals.json of finished rounds (checked: engine.store.read_evals),
    eval events of the round in progress."""
    out: dict[tuple[int, int], list[EvalPoint]] = {}
    config, layout = read_config(run_dir), RunLayout(run_dir)
    for t in range(config.trials):
        for r, _ in iter_round_dirs(run_dir, t):
            if layout.evals(t, r).is_file():
                out[(t, r)] = read_evals(layout.round_dir(t, r))
    try:
        events, _ = read_events(run_dir)
    except StoreError:
        events = []
    live: dict[tuple[int, int], dict[int, EvalPoint]] = {}
    for event in events:
        if event.get("event") != "eval" or not isinstance(event.get("trial"), int) or not isinstance(event.get("round"),
                                                                                                     int):
            continue
        key = (event["trial"], event["round"])
        if key not in out and isinstance(event.get("iteration"), int):
            live.setdefault(key, {})[event["iteration"]] = event  # a resumed round repeats evals: keep the last
    for key, by_iteration in live.items():
        out[key] = [by_iteration[i] for i in sorted(by_iteration)]
    return out


def _write_curves(writer: Any, records: list[CurvePoint] | list[RoundRecord], mean: bool) -> None:
    """Sparsity-curve scalars from summary curve points (mean=True) or one trial's round records."""
    for rec in records:
        remaining = _number(rec.get("weights_remaining"))
        if remaining is None:
            continue
        step = sparsity_step(remaining)
        for key, tag in SPARSITY_TAGS.items():
            field = f"{key}_mean" if mean else ("test_accuracy_at_early_stop" if key == "test_accuracy" else key)
            value = _number(rec.get(field))
            if value is not None:
                writer.add_scalar(tag, value, step)
        if mean and (std := _number(rec.get("test_accuracy_std"))) is not None and rec.get("n", 1) > 1:
            writer.add_scalar("sparsity/test_accuracy_std", std, step)
        r = rec.get("round")
        if isinstance(r, int):
            writer.add_scalar("by_round/weights_remaining", remaining, r)
            acc = _number(rec.get("test_accuracy_mean" if mean else "test_accuracy_at_early_stop"))
            if acc is not None:
                writer.add_scalar("by_round/test_accuracy", acc, r)
            stop = _number(rec.get("early_stop_iteration_mean" if mean else "early_stop_iteration"))
            if stop is not None:
                writer.add_scalar("by_round/early_stop_iteration", stop, r)


def hparam_value(value: Any) -> str | float | bool:
    """TensorBoard's hparams take numbers, strings and bools; lists (model.hidden) become their text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _run_metrics(summary: Summary) -> dict[str, float]:
    curve = [p for p in summary.get("curve", []) if _number(p.get("test_accuracy_mean")) is not None]
    if not curve:
        return {}
    best = max(curve, key=lambda p: p["test_accuracy_mean"])
    last = curve[-1]
    return {"hparam/best_test_accuracy": float(best["test_accuracy_mean"]),
            "hparam/weights_remaining_at_best": float(best["weights_remaining"]),
            "hparam/last_test_accuracy": float(last["test_accuracy_mean"]),
            "hparam/last_weights_remaining": float(last["weights_remaining"])}


def _write_run(run_dir: Path, target: Path, swept: dict[str, Any] | None) -> None:
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    summary = read_summary(run_dir)
    config_text = read_bytes(RunLayout(run_dir).config).decode("utf-8", errors="replace")[:100_000]
    mask_training = experiment_of(read_config(run_dir)).mask_training
    for (t, r), evals in sorted(_round_evals(run_dir).items()):
        with SummaryWriter(str(target / trial_name(t) / round_name(r)), flush_secs=3600) as writer:
            for point in evals:
                step = point.get("global_iteration") if mask_training else point.get("iteration")
                if not isinstance(step, int):
                    continue
                for key, tag in EVAL_TAGS.items():
                    value = _number(point.get(key))
                    if value is not None:
                        writer.add_scalar(tag, value, step)
    with SummaryWriter(str(target / "sparsity"), flush_secs=3600) as writer:
        _write_curves(writer, summary.get("curve", []), mean=True)
        writer.add_text("config", "    " + config_text.replace("\n", "\n    "), 0)
    trials = summary.get("trials", [])
    if len(trials) > 1:
        for t, trial in enumerate(trials):
            with SummaryWriter(str(target / trial_name(t) / "sparsity"), flush_secs=3600) as writer:
                _write_curves(writer, [rec for rec in trial.get("rounds", []) if isinstance(rec, dict)], mean=False)
    if swept is not None:
        metrics = _run_metrics(summary)
        exp, ssi, sei = hparams({k: hparam_value(v) for k, v in swept.items()}, metrics)
        with SummaryWriter(str(target), flush_secs=3600) as writer:
            for record in (exp, ssi, sei):
                writer.file_writer.add_summary(record)
            for tag, value in metrics.items():
                writer.add_scalar(tag, value, 0)


def _output_folder(output: Path) -> Path:
    if output.is_symlink():
        raise ExportError(f"{output} is a symlink; refusing to write through it (give another -o DIR)")
    if output.exists() and not output.is_dir():
        raise ExportError(f"{output} exists and is not a folder; tensorboard export writes a folder (-o DIR)")
    output.mkdir(parents=True, exist_ok=True)
    return output


def export_tensorboard(runs: list[tuple[Path, dict[str, Any] | None]], output: Path) -> Path:
    """Writes event files for `runs` ((run dir, swept values or None)) under `output`; returns it."""
    output = _output_folder(Path(output))
    staging = Path(tempfile.mkdtemp(prefix=".lth-tui-tensorboard-", dir=output))
    try:
        for run_dir, swept in runs:
            run_dir = Path(run_dir)
            try:
                _write_run(run_dir, staging / run_dir.name, swept)
            except StoreError as exc:
                raise ExportError(f"{run_dir}: {exc}") from None
        for run_dir, _ in runs:
            final = output / Path(run_dir).name
            if final.is_symlink() or final.exists():
                os.replace(final, staging / f".old-{final.name}")  # moves a link itself, never its target
            os.replace(staging / final.name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output
