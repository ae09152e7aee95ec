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


def _run_label(swept: dict[str, Any]) -> str:
    return ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in swept.items())


def group_markdown(folder: Path) -> str:
    """All runs of a sweep side by side: one summary row per run, then the curves per round."""
    from lth_tui.sweeps import read_group

    group = read_group(folder)
    entries = []
    for entry in group["runs"]:
        run_dir = Path(entry["run_dir"])
        try:
            summary, state = read_summary(run_dir), read_status(run_dir)["state"]
        except Exception as exc:  # a damaged member must not hide the others
            summary, state = None, f"damaged: {exc}"
        entries.append((entry, run_dir, summary, state))
    axes = ", ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in group.get("axes", {}).items())
    lines = [f"# sweep {group['group']}", "", f"- preset: {group.get('preset', '')}", f"- swept: {axes}", "",
             "| run | " + " | ".join(group.get("axes", {})) + " | state | best acc % | at weights % | last round acc % | last weights % |",
             "|---|" + "---|" * len(group.get("axes", {})) + "---|---:|---:|---:|---:|"]
    for entry, run_dir, summary, state in entries:
        values = " | ".join(str(entry["swept"].get(k, "")) for k in group.get("axes", {}))
        curve = summary.get("curve", []) if summary else []
        if curve:
            best = max(curve, key=lambda p: p["test_accuracy_mean"])
            last = curve[-1]
            figures = (f"{_mean_std(best, 'test_accuracy')} | {_pct(best['weights_remaining'])} | "
                       f"{_mean_std(last, 'test_accuracy')} | {_pct(last['weights_remaining'])}")
        else:
            figures = "– | – | – | –"
        lines.append(f"| {run_dir.name} | {values} | {state} | {figures} |")
    rounds = sorted({p["round"] for _, _, s, _ in entries if s for p in s.get("curve", [])})
    if rounds:
        lines += ["", "Test accuracy % at early stop (mean ± std over trials) and weights remaining %, per round:", "",
                  "| round | " + " | ".join(_run_label(e["swept"]) for e, _, _, _ in entries) + " |",
                  "|---:|" + "---:|" * len(entries)]
        for r in rounds:
            cells = []
            for _, _, summary, _ in entries:
                point = next((p for p in (summary or {}).get("curve", []) if p["round"] == r), None)
                cells.append("–" if point is None else f"{_mean_std(point, 'test_accuracy')} @ {_pct(point['weights_remaining'])}")
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def group_csv(folder: Path) -> str:
    """Every round of every run of a sweep, with the swept values as columns."""
    from lth_tui.sweeps import read_group

    group = read_group(folder)
    keys = list(group.get("axes", {}))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", *keys, *ROUND_COLUMNS])
    for entry in group["runs"]:
        run_dir = Path(entry["run_dir"])
        summary = read_summary(run_dir)
        for t, trial in enumerate(summary["trials"]):
            for rec in trial["rounds"]:
                writer.writerow([run_dir.name, *(entry["swept"].get(k) for k in keys), t, trial["seed"],
                                 *(rec.get(c) for c in ROUND_COLUMNS[2:])])
    return out.getvalue()


def export_group(folder: Path, fmt: str, output: Path | str | None = None) -> Path | str:
    """Like export() for a sweep group; files default into the group folder."""
    from lth_tui.sweeps import group_json, read_group

    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not allowed; formats: {', '.join(FORMATS)}")
    folder = Path(folder)
    if fmt == "png":
        if str(output) == "-":
            raise ExportError("png cannot be written to standard output; give -o FILE.png")
        target = Path(output) if output else folder / "export.png"
        to_png([Path(e["run_dir"]) for e in read_group(folder)["runs"]], target)
        return target
    text = {"md": group_markdown, "json": group_json, "csv": group_csv}[fmt](folder)
    if str(output) == "-":
        return text
    target = Path(output) if output else folder / f"export.{fmt}"
    target.write_text(text, encoding="utf-8")
    return target
