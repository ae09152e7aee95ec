"""Run summaries as Markdown, JSON, CSV and PNG, read only from the run store.

Shared by the headless CLI and the app; it imports neither textual nor the engine's
training code, so exporting a copied run dir needs nothing but its files.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from engine.store import read_config, read_status, read_summary

FORMATS = ("md", "json", "csv", "png")
ROUND_COLUMNS = ("trial", "seed", "round", "weights_remaining", "early_stop_iteration", "val_loss_min",
                 "test_accuracy_at_early_stop", "test_accuracy_final", "supermask_accuracy", "seconds")


class ExportError(ValueError):
    """An export that cannot be written; the message names the reason."""


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _mean_std(point: dict[str, Any], key: str, pct: bool = True) -> str:
    mean, std = point.get(f"{key}_mean"), point.get(f"{key}_std", 0.0)
    if mean is None:
        return "–"
    if pct:
        return f"{100 * mean:.2f} ± {100 * std:.2f}" if point.get("n", 1) > 1 else f"{100 * mean:.2f}"
    return f"{mean:.0f} ± {std:.0f}" if point.get("n", 1) > 1 else f"{mean:.0f}"


def to_markdown(run_dir: Path) -> str:
    """A report a researcher can paste into notes: setup, the curve table, per-layer sparsity."""
    summary = read_summary(run_dir)
    config = read_config(run_dir)
    status = read_status(run_dir)
    p, t = config.prune, config.train
    rates = ", ".join(f"{k} {100 * v:g}%" for k, v in p.rate.items())
    lines = [
        f"# {summary['run_id']}",
        "",
        f"- state: {summary.get('state', status['state'])}",
        f"- preset: {status.get('preset', config.name)} — {config.description}",
        f"- data: {config.data.name} (val {config.data.val_size}); model: {config.model.name} ({config.model.init})",
        f"- training: {t.optimizer} lr {t.lr:g}, batch {t.batch_size}, {t.iterations} iterations, {t.schedule} schedule",
        f"- pruning: {p.strategy} {p.scope}, {p.rounds} rounds, rates {rates}; criterion {p.criterion}; "
        f"mask-1 {p.mask1}; mask-0 {p.mask0}; rewind to iteration {p.rewind_iteration}",
        f"- trials: {config.trials} (seeds {config.seed}..{config.seed + config.trials - 1})",
        "",
        "| round | weights remaining % | test acc % at early stop | final test acc % | early-stop iteration | supermask acc % | n |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for point in summary.get("curve", []):
        lines.append(f"| {point['round']} | {_pct(point['weights_remaining'])} | {_mean_std(point, 'test_accuracy')} | "
                     f"{_mean_std(point, 'test_accuracy_final')} | {_mean_std(point, 'early_stop_iteration', pct=False)} | "
                     f"{_mean_std(point, 'supermask_accuracy')} | {point['n']} |")
    first_trial = summary["trials"][0]["rounds"] if summary["trials"] else []
    if first_trial:
        layers = list(first_trial[0]["layers"])
        lines += ["", "Weights remaining per layer (% , trial 0):", "",
                  "| layer | " + " | ".join(f"r{rec['round']}" for rec in first_trial) + " |",
                  "|---|" + "---:|" * len(first_trial)]
        for layer in layers:
            lines.append(f"| {layer} | " + " | ".join(_pct(rec["layers"].get(layer)) for rec in first_trial) + " |")
    return "\n".join(lines) + "\n"


def to_json(run_dir: Path) -> str:
    return json.dumps(read_summary(run_dir), indent=1) + "\n"


def to_csv(run_dir: Path) -> str:
    """One row per trial and round: the raw figures, for pandas or a spreadsheet."""
    summary = read_summary(run_dir)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ROUND_COLUMNS)
    for t, trial in enumerate(summary["trials"]):
        for rec in trial["rounds"]:
            writer.writerow([t, trial["seed"], *(rec.get(c) for c in ROUND_COLUMNS[2:])])
    return out.getvalue()


def to_png(run_dirs: list[Path], path: Path) -> None:
    """The sparsity curves (mean ± std over trials, log x) and early-stop iterations of runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_stop) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run_dir in run_dirs:
        summary = read_summary(run_dir)
        curve = summary.get("curve", [])
        if not curve:
            continue
        x = [100 * p["weights_remaining"] for p in curve]
        label = summary["run_id"]
        ax_acc.errorbar(x, [100 * p["test_accuracy_mean"] for p in curve], yerr=[100 * p["test_accuracy_std"] for p in curve],
                        marker="o", ms=3, capsize=2, label=label)
        ax_stop.errorbar(x, [p["early_stop_iteration_mean"] for p in curve], yerr=[p["early_stop_iteration_std"] for p in curve],
                         marker="o", ms=3, capsize=2, label=label)
    for ax, ylabel in ((ax_acc, "test accuracy at early stop (%)"), (ax_stop, "early-stop iteration")):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def export(run_dir: Path, fmt: str, output: Path | None = None) -> Path | str:
    """Writes one format; returns the path written, or the text when output is "-"."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not allowed; formats: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    if fmt == "png":
        if str(output) == "-":
            raise ExportError("png cannot be written to standard output; give -o FILE.png")
        target = Path(output) if output else run_dir / "export.png"
        to_png([run_dir], target)
        return target
    text = {"md": to_markdown, "json": to_json, "csv": to_csv}[fmt](run_dir)
    if str(output) == "-":
        return text
    target = Path(output) if output else run_dir / f"export.{fmt}"
    target.write_text(text, encoding="utf-8")
    return target
