"""Run summaries as Markdown, JSON, CSV and PNG, read only from the run store.

Shared by the headless CLI and the app; it imports neither textual nor the engine's
training code, so exporting a copied run dir needs nothing but its files. The analysis
sections come from the stored files too: LMC results (lmc*.json, via engine.store.read_lmc)
and mask overlaps (the rounds' mask.safetensors, via engine.overlap); both readers are
imported only when an export needs them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from engine.layout import RunLayout, export_file
from engine.records import CurvePoint, LmcRecord, RoundRecord, mean_std
from engine.run_index import headline_accuracy
from engine.store import read_config, read_status, read_successive, read_summary
from lth_tui.stability import stability_markdown, successive_markdown
from lth_tui.untrusted import UnsafeTarget, csv_text, finite, md_text, one_line, write_file

FORMATS = ("md", "json", "csv", "png")
ROUND_COLUMNS = ("trial", "seed", "round", "weights_remaining", "early_stop_iteration", "val_loss_min",
                 "test_accuracy_at_early_stop", "test_accuracy_final", "supermask_accuracy", "seconds")
# Round figures only some runs record (the LMC option, mask training, successive rounds; densities
# and the best test accuracy are absent from runs made before they existed): CSV columns when present.
OPTIONAL_COLUMNS = ("weights_trainable", "weights_nonzero", "test_accuracy_best", "lmc_barrier", "lmc_stable",
                    "expected_mask_accuracy", "sampled_mask_accuracy",
                    "successive_barrier", "successive_barrier_train", "successive_barrier_unprojected",
                    "successive_barrier_unprojected_train", "successive_l2", "successive_cosine",
                    "successive_l2_unprojected", "successive_cosine_unprojected", "successive_angular",
                    "rewind_distance", "rewind_distance_previous")


class ExportError(ValueError):
    """An export that cannot be written; the message names the reason."""


def _write(target: Path, data: str | bytes) -> Path:
    try:
        return write_file(target, data)
    except UnsafeTarget as exc:
        raise ExportError(str(exc)) from None


def _length(step: Any) -> str:
    """"1500 iterations" or "160 epochs" for a config length."""
    return f"{step.count} {'epochs' if step.unit == 'ep' else 'iterations'}"


def _scaled(train: Any) -> str:
    """The learning rate trained with, when it follows the batch size (train.lr_scaling = "linear")."""
    if getattr(train, "lr_scaling", "none") != "linear":
        return ""
    return f" (linear scaling from batch {train.lr_reference_batch}: {train.lr * train.lr_scale():g})"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _point_pm(point: CurvePoint, key: str, pct: bool = True) -> str:
    """A curve point's stored `<key>_mean` ± `<key>_std` (summary.json's vocabulary), as a cell."""
    mean, std = point.get(f"{key}_mean"), point.get(f"{key}_std", 0.0)
    if mean is None:
        return "–"
    if pct:
        return f"{100 * mean:.2f} ± {100 * std:.2f}" if point.get("n", 1) > 1 else f"{100 * mean:.2f}"
    return f"{mean:.0f} ± {std:.0f}" if point.get("n", 1) > 1 else f"{mean:.0f}"


def to_markdown(run_dir: Path) -> str:
    """A report a researcher can paste into notes: setup, the curve table, per-layer sparsity,
    and when the run has them, LMC results and mask overlaps."""
    summary = read_summary(run_dir)
    config = read_config(run_dir)
    status = read_status(run_dir)
    p, t = config.prune, config.train
    rates = ", ".join(f"{k} {100 * v:g}%" for k, v in p.rate.items())
    lines = [
        f"# {md_text(summary.get('run_id') or Path(run_dir).name)}",
        "",
        f"- state: {md_text(summary.get('state') or status['state'])}",
        f"- preset: {md_text(status.get('preset') or config.name)} — {md_text(config.description)}",
        f"- data: {config.data.name} (val {config.data.val_size}); model: {config.model.name} ({config.model.init})",
        f"- training: {t.optimizer} lr {t.lr:g}{_scaled(t)}, batch {t.batch_size}, {_length(t.iterations)}, "
        f"{t.schedule} schedule",
        f"- pruning: {p.strategy} {p.scope}, {p.rounds} rounds, rates {rates}; criterion {p.criterion}; "
        f"mask-1 {p.mask1}; mask-0 {p.mask0}; rewind to {_length(p.rewind_iteration)}",
        f"- trials: {config.trials} (seeds {config.seed}..{config.seed + config.trials - 1})",
    ]
    masks_trained = getattr(config, "experiment", "imp") != "imp"
    if masks_trained:  # the [prune] line above does not apply; say what does
        sm = config.supermask
        how = (f"logit init {sm.logit_init:g}, rescale {sm.rescale}" if config.experiment == "supermask"
               else f"k {sm.k:g}, score init {sm.score_init}")
        lines[-2] = (f"- mask training: {config.experiment}, weights {sm.weights}, {how}, "
                     f"{sm.rounds} rounds (segments of one training; "
                     "a round's figures are those of its expected mask, no early stopping)")
    extra_head = " expected mask acc % | sampled mask acc % |" if masks_trained else ""
    if config.data.val_size == 0:
        lines.append("- no hold-out (data.val_size = 0): no early stopping, the early-stop columns are empty")
    lines += [
        "",
        "| round | weights remaining (trainable) % | non-zero in forward % | test acc % at early stop | "
        f"final test acc % | best test acc % | early-stop iteration | supermask acc % |{extra_head} n |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if masks_trained else "") + "---:|",
    ]
    for point in summary.get("curve", []):
        extra = (f" {_point_pm(point, 'expected_mask_accuracy')} | {_point_pm(point, 'sampled_mask_accuracy')} |"
                 if masks_trained else "")
        lines.append(f"| {point['round']} | {_pct(point['weights_remaining'])} | "
                     f"{_pct(point.get('weights_nonzero'))} | "
                     f"{_point_pm(point, 'test_accuracy')} | {_point_pm(point, 'test_accuracy_final')} | "
                     f"{_point_pm(point, 'test_accuracy_best')} | "
                     f"{_point_pm(point, 'early_stop_iteration', pct=False)} | "
                     f"{_point_pm(point, 'supermask_accuracy')} |{extra} {point['n']} |")
    first_trial = summary["trials"][0]["rounds"] if summary["trials"] else []
    if first_trial:
        layers = list(first_trial[0]["layers"])
        lines += ["", "Weights remaining per layer (% , trial 0):", "",
                  "| layer | " + " | ".join(f"r{rec['round']}" for rec in first_trial) + " |",
                  "|---|" + "---:|" * len(first_trial)]
        for layer in layers:
            cells = " | ".join(_pct(rec["layers"].get(layer)) for rec in first_trial)
            lines.append(f"| {md_text(layer, 120)} | " + cells + " |")
        if any(rec.get("layers_nonzero", rec["layers"]) != rec["layers"] for rec in first_trial):
            lines += ["", "Non-zero in the forward pass per layer (% , trial 0; frozen pruned weights count):", "",
                      "| layer | " + " | ".join(f"r{rec['round']}" for rec in first_trial) + " |",
                      "|---|" + "---:|" * len(first_trial)]
            for layer in layers:
                cells = " | ".join(_pct((rec.get("layers_nonzero") or {}).get(layer)) for rec in first_trial)
                lines.append(f"| {md_text(layer, 120)} | " + cells + " |")
    weights = {p["round"]: p["weights_remaining"] for p in summary.get("curve", [])}
    lines += _lmc_markdown(run_dir, config, weights)
    lines += successive_markdown(run_dir)
    lines += _overlap_markdown(run_dir, weights)
    return "\n".join(lines) + "\n"


def read_lmc_records(run_dir: Path) -> list[LmcRecord]:
    """Every stored LMC result of the run (engine.store.read_lmc), [] when it has none."""
    if not RunLayout(run_dir).lmc_files():
        return []
    from engine.store import read_lmc

    return read_lmc(run_dir)


def _pm(values: list[float | None], scale: float = 100.0, digits: int = 2) -> str:
    mean, std, n = mean_std(values)
    if mean is None or std is None:
        return "–"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}" if n > 1 else f"{scale * mean:.{digits}f}"


def lmc_table(records: list[LmcRecord], own_k: int | None = None) -> list[dict[str, Any]]:
    """LMC results grouped by (round, rewind point) over trials: [{"round", "rewind_iteration",
    "barriers", "stable", "error_a", "error_b", "n"}], the round-start group first in a round."""
    groups: dict[tuple[int, int], dict[str, Any]] = {}
    for rec in records:
        if rec.get("barrier") is None:
            continue
        k = rec.get("rewind_iteration")
        key = (int(rec.get("round", 0)), -1 if k is None else int(k))
        group = groups.setdefault(key, {"round": key[0], "rewind_iteration": k, "barriers": [], "stable": [],
                                        "error_a": [], "error_b": []})
        group["barriers"].append(rec["barrier"])
        group["stable"].append(bool(rec.get("stable")))
        group["error_a"].append(rec.get("error_a"))
        group["error_b"].append(rec.get("error_b"))
    out = [groups[key] for key in sorted(groups)]
    for group in out:
        group["n"] = len(group["barriers"])
    return out


def _own_rewind(config: Any) -> int | None:
    """The run's rewind point in iterations when the config gives it in iterations."""
    step = getattr(config.prune, "rewind_iteration", None)
    if isinstance(step, int):
        return step
    return int(step.count) if getattr(step, "unit", "") == "it" else None


def _lmc_markdown(run_dir: Path, config: Any, weights: dict[int, float]) -> list[str]:
    records = read_lmc_records(run_dir)
    if not records:
        return []
    threshold = next((r["threshold"] for r in records if r.get("threshold") is not None), 0.02)
    own = _own_rewind(config) if config.prune.mask1 == "rewind" else None
    lines = ["", "## Linear mode connectivity", "",
             "Test-error barrier between two copies trained from the same point with different data order "
             "(Frankle et al. 2020): the highest error on the straight line between them minus the mean error of the "
             f"two ends. Stable: barrier < {100 * threshold:g}%. Mean ± std over trials; \"round start\" is the "
             "round's own start as the run trained it (lmc.json), k a rewind point (lmc-k<K>.json).", "",
             "| round | weights remaining % | rewind k | barrier % | stable | end errors % (A / B) | n |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for group in lmc_table(records):
        r, k = group["round"], group["rewind_iteration"]
        if k is None:
            where = "round start" + (f" (k={0 if r == 0 else own})" if own is not None or r == 0 else "")
        else:
            where = f"k={k}"
        stable = group["stable"]
        verdict = ("yes" if stable[0] else "no") if len(stable) == 1 else f"{sum(stable)}/{len(stable)}"
        ends = f"{_pm(group['error_a'])} / {_pm(group['error_b'])}"
        lines.append(f"| {r} | {_pct(weights.get(r))} | {where} | {_pm(group['barriers'])} | {verdict} | {ends} | "
                     f"{group['n']} |")
    return lines


def _overlap_markdown(run_dir: Path, weights: dict[int, float]) -> list[str]:
    try:
        from engine.overlap import run_overlaps

        overlap = run_overlaps(run_dir)
    except Exception as exc:  # a damaged mask must not lose the rest of the report
        return ["", "## Mask overlap", "", f"(not available: {md_text(f'{type(exc).__name__}: {exc}')})"]
    consecutive = {int(t): recs for t, recs in overlap["consecutive"].items()}
    across = {int(r): v for r, v in overlap["between_trials"].items()}
    if not any(consecutive.values()) and not across:
        return []
    trials = sorted(consecutive)
    lines = ["", "## Mask overlap", "",
             "Jaccard overlap |A∩B| / |A∪B| of the kept weights, all prunable layers pooled; chance: the overlap of "
             "two random masks of the same densities p and q, pq / (p + q − pq).", ""]
    pairs = sorted({tuple(rec["rounds"]) for recs in consecutive.values() for rec in recs})
    if pairs:
        lines += ["Consecutive rounds (each trial's mask against its previous round's):", "",
                  "| rounds | weights remaining % | " + " | ".join(f"trial {t}" for t in trials)
                  + " | mean ± std | chance |",
                  "|---|---:|" + "---:|" * len(trials) + "---:|---:|"]
        for a, b in pairs:
            found = {t: next((rec for rec in consecutive[t] if tuple(rec["rounds"]) == (a, b)), None) for t in trials}
            values = [rec["all"] for rec in found.values() if rec is not None]
            chances = [rec["chance"] for rec in found.values() if rec is not None]
            cells = " | ".join("–" if rec is None else f"{rec['all']:.4f}" for rec in found.values())
            lines.append(f"| {a}→{b} | {_pct(weights.get(b))} | {cells} | "
                         f"{_pm(values, 1.0, 4)} | {_pm(chances, 1.0, 4)} |")
    if across:
        lines += ["", "Between trials (mean over the pairs of trials at the same round):", "",
                  "| round | weights remaining % | mean Jaccard | chance | pairs |", "|---:|---:|---:|---:|---:|"]
        for r in sorted(across):
            entry = across[r]
            if entry.get("mean") is None:
                continue
            lines.append(f"| {r} | {_pct(weights.get(r))} | {entry['mean']:.4f} | {entry['chance_mean']:.4f} | "
                         f"{len(entry['pairs'])} |")
    return lines


def to_json(run_dir: Path) -> str:
    """summary.json, plus "lmc" (every stored LMC result) when there are any and "mask_overlap"
    (engine.overlap.run_overlaps) when masks are stored."""
    summary = read_summary(run_dir)
    lmc = read_lmc_records(run_dir)
    if lmc:
        summary["lmc"] = lmc
    successive = read_successive(run_dir)
    if successive:
        summary["successive"] = successive
    if RunLayout(run_dir).masks_on_disk():
        try:
            from engine.overlap import run_overlaps

            summary["mask_overlap"] = run_overlaps(run_dir)
        except Exception as exc:  # a damaged mask must not lose the rest
            summary["mask_overlap"] = {"error": f"{type(exc).__name__}: {exc}"}
    return json.dumps(finite(summary), indent=1, allow_nan=False) + "\n"


def _optional_columns(records: list[RoundRecord]) -> list[str]:
    return [c for c in OPTIONAL_COLUMNS if any(rec.get(c) is not None for rec in records)]


def to_csv(run_dir: Path) -> str:
    """One row per trial and round: the raw figures, for pandas or a spreadsheet."""
    summary = read_summary(run_dir)
    extra = _optional_columns([rec for trial in summary["trials"] for rec in trial["rounds"]])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*ROUND_COLUMNS, *extra])
    for t, trial in enumerate(summary["trials"]):
        for rec in trial["rounds"]:
            writer.writerow([csv_text(v) for v in [t, trial.get("seed"), *(rec.get(c) for c in ROUND_COLUMNS[2:]),
                                                   *(rec.get(c) for c in extra)]])
    return out.getvalue()


def to_png(run_dirs: list[Path], path: Path) -> None:
    """The sparsity curves (mean ± std over trials, log x) and early-stop iterations of runs:
    ticks at the rounds' weights remaining, the runs named in the title, a legend on each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter

    from lth_tui.run_labels import run_labels

    summaries = [read_summary(run_dir) for run_dir in run_dirs]
    names = [str(s.get("run_id") or Path(d).name) for s, d in zip(summaries, run_dirs)]
    labels = run_labels([(name, s.get("config")) for name, s in zip(names, summaries)])
    fig, (ax_acc, ax_stop) = plt.subplots(1, 2, figsize=(11, 4.6))
    ticks: set[float] = set()
    for summary, label in zip(summaries, labels):
        curve = summary.get("curve", [])
        if not curve:
            continue
        x = [100 * p["weights_remaining"] for p in curve]
        ticks.update(round(v, 6) for v in x)
        counts = [p.get("n", 1) for p in curve]
        label = one_line(label, 80).replace("$", r"\$")  # no mathtext
        label += f" (n={min(counts)}" + (f"–{max(counts)})" if max(counts) != min(counts) else ")")
        key = "test_accuracy" if any(p.get("test_accuracy_mean") is not None for p in curve) else "test_accuracy_final"
        acc = [100 * p[f"{key}_mean"] for p in curve]
        line = ax_acc.errorbar(x, acc, yerr=[100 * p[f"{key}_std"] for p in curve], marker="o", ms=3, capsize=2,
                               label=label + ("" if key == "test_accuracy" else ", final: no hold-out"))
        nonzero = [100 * p.get("weights_nonzero", p["weights_remaining"]) for p in curve]
        if nonzero != x:  # freezing mask-0 actions: the same accuracies at the forward pass's density
            ticks.update(round(v, 6) for v in nonzero)
            ax_acc.plot(nonzero, acc, linestyle="--", marker="x", ms=3, color=line[0].get_color(),
                        label=f"{label} at non-zero % of the forward pass")
        stops = [(xi, p) for xi, p in zip(x, curve) if p.get("early_stop_iteration_mean") is not None]
        if stops:
            ax_stop.errorbar([xi for xi, _ in stops], [p["early_stop_iteration_mean"] for _, p in stops],
                             yerr=[p["early_stop_iteration_std"] for _, p in stops], marker="o", ms=3, capsize=2,
                             label=label)
    shown = _thin_log_ticks(sorted(ticks, reverse=True))
    for ax, ylabel in ((ax_acc, "test accuracy at early stop (%)"), (ax_stop, "early-stop iteration")):
        ax.set_xscale("log")
        if shown:
            ax.set_xlim(max(shown) * 1.08, min(shown) / 1.08)  # reversed: 100% on the left
            ax.xaxis.set_major_locator(FixedLocator(shown))
            ax.set_xticks(shown, [f"{v:.3g}" for v in shown], fontsize=7)
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    title = names[0] if len(names) == 1 else f"{len(names)} runs: " + ", ".join(labels)
    fig.suptitle(one_line(title, 150).replace("$", r"\$"), fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    _write(path, buffer.getvalue())


def _thin_log_ticks(values: list[float], min_ratio: float = 1.12) -> list[float]:
    """The rounds' weights remaining, skipping any closer than min_ratio to the last kept one
    on the log axis (so the labels do not overlap)."""
    kept: list[float] = []
    for v in values:
        if v > 0 and (not kept or kept[-1] / v >= min_ratio):
            kept.append(v)
    return kept


def refuse_overwrite(target: Path, overwrite: bool) -> None:
    """An existing file is only replaced when asked (the CLI's --force, the app's confirm)."""
    if not overwrite and Path(target).exists():
        raise ExportError(f"{target} exists; pass --force to overwrite it")


def export(run_dir: Path, fmt: str, output: Path | None = None, overwrite: bool = True) -> Path | str:
    """Writes one format; returns the path written, or the text when output is "-"."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not allowed; formats: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    if fmt == "png":
        if str(output) == "-":
            raise ExportError("png cannot be written to standard output; give -o FILE.png")
        target = check_export_target(Path(output) if output else export_file(run_dir, "png"))
        refuse_overwrite(target, overwrite)
        to_png([run_dir], target)
        return target
    target = None if str(output) == "-" else check_export_target(Path(output) if output else export_file(run_dir, fmt))
    if target is not None:
        refuse_overwrite(target, overwrite)
    text = {"md": to_markdown, "json": to_json, "csv": to_csv}[fmt](run_dir)
    if target is None:
        return text
    return _write(target, text)


def check_export_target(target: Path) -> Path:
    """Refuses a symlink, a folder or a missing folder before any work is done (ExportError)."""
    try:
        from lth_tui.untrusted import check_target

        return check_target(target)
    except UnsafeTarget as exc:
        raise ExportError(str(exc)) from None


def _run_label(entry: dict[str, Any]) -> str:
    """A group entry's own "label", else its swept values."""
    swept = ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in entry["swept"].items())
    return md_text(entry.get("label") or swept, 200)


def group_markdown(folder: Path) -> str:
    """All runs of a sweep side by side: one summary row per run, then the curves per round."""
    from lth_tui.sweeps import read_group

    group = read_group(folder)
    group.setdefault("group", Path(folder).name)
    return side_by_side_markdown(group)


def side_by_side_markdown(group: dict[str, Any]) -> str:
    """Runs side by side, from a group.json-shaped dict: {"group", "preset", "axes", "runs":
    [{"run_dir", "swept"}]}; a "title" replaces the sweep heading (marked runs of the app)."""
    entries = []
    for entry in group["runs"]:
        run_dir = Path(entry["run_dir"])
        try:
            summary, state = read_summary(run_dir), read_status(run_dir)["state"]
        except Exception as exc:  # a damaged member must not hide the others
            summary, state = None, f"damaged: {exc}"
        entries.append((entry, run_dir, summary, state))
    axes = md_text(", ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in group.get("axes", {}).items()), 1000)
    heading = group.get("title") or f"# sweep {md_text(group.get('group', ''))}"
    lines = [heading, "", f"- preset: {md_text(group.get('preset', ''))}",
             f"- {group.get('axes_word', 'swept')}: {axes}", "",
             "| run | " + " | ".join(md_text(k) for k in group.get("axes", {}))
             + " | state | best acc % | at weights % | last round acc % | last weights % |",
             "|---|" + "---|" * len(group.get("axes", {})) + "---|---:|---:|---:|---:|"]
    for entry, run_dir, summary, state in entries:
        values = " | ".join(md_text(entry["swept"].get(k, "")) for k in group.get("axes", {}))
        curve = summary.get("curve", []) if summary else []
        if curve:
            best = max(curve, key=lambda p: headline_accuracy(p) or 0.0)
            last = curve[-1]
            figures = (f"{_point_pm(best, 'test_accuracy')} | {_pct(best['weights_remaining'])} | "
                       f"{_point_pm(last, 'test_accuracy')} | {_pct(last['weights_remaining'])}")
        else:
            figures = "– | – | – | –"
        lines.append(f"| {md_text(run_dir.name)} | {values} | {md_text(state)} | {figures} |")
    rounds = sorted({p["round"] for _, _, s, _ in entries if s for p in s.get("curve", [])})
    if rounds:
        lines += ["", "Test accuracy % at early stop (mean ± std over trials) and weights remaining %, per round:", "",
                  "| round | " + " | ".join(_run_label(e) for e, _, _, _ in entries) + " |",
                  "|---:|" + "---:|" * len(entries)]
        for r in rounds:
            cells = []
            for _, _, summary, _ in entries:
                point = next((p for p in (summary or {}).get("curve", []) if p["round"] == r), None)
                cells.append("–" if point is None
                             else f"{_point_pm(point, 'test_accuracy')} @ {_pct(point['weights_remaining'])}")
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
    lines += stability_markdown([(entry, summary) for entry, _, summary, _ in entries])
    lines += _group_overlap_markdown([(run_dir, _run_label(entry)) for entry, run_dir, _, _ in entries])
    return "\n".join(lines) + "\n"


def group_overlap(run_dirs: list[Path]) -> dict[str, Any] | None:
    """engine.overlap.between_runs of the runs at their last common round with a mask (trial 0),
    or None when they share none."""
    from engine.overlap import between_runs
    from engine.store import iter_round_dirs

    common: set[int] | None = None
    for run_dir in run_dirs:
        rounds = {r for r, _ in iter_round_dirs(run_dir, 0) if RunLayout(run_dir).mask(0, r).is_file()}
        common = rounds if common is None else common & rounds
    if not common:
        return None
    return between_runs(run_dirs, max(common), trial=0)


def _group_overlap_markdown(runs: list[tuple[Path, str]]) -> list[str]:
    if len(runs) < 2:
        return []
    try:
        result = group_overlap([d for d, _ in runs])
    except Exception as exc:  # a damaged member's mask must not lose the rest
        return ["", f"Mask overlap between the runs: not available ({type(exc).__name__}: {exc})"]
    if result is None:
        return []
    n = len(runs)
    lines = ["", f"Mask overlap between the runs at round {result['round']}, their last common round (trial 0): "
             "Jaccard |A∩B| / |A∪B| of the kept weights, all prunable layers pooled, and in brackets the chance "
             "level of random masks of the same densities:", "",
             "| # | run | weights remaining % | " + " | ".join(str(i + 1) for i in range(n)) + " |",
             "|---:|---|---:|" + "---:|" * n]
    for i, (_, label) in enumerate(runs):
        cells = []
        for j in range(n):
            value, chance = result["matrix"][i][j], result["chance"][i][j]
            cells.append("–" if value is None else "1" if i == j else f"{value:.4f} ({chance:.4f})")
        lines.append(f"| {i + 1} | {label} | {_pct(result['weights_remaining'][i])} | " + " | ".join(cells) + " |")
    return lines


def group_csv(folder: Path) -> str:
    """Every round of every run of a sweep, with the swept values as columns."""
    from lth_tui.sweeps import read_group

    return side_by_side_csv(read_group(folder))


def side_by_side_csv(group: dict[str, Any]) -> str:
    """Every round of every run of a group.json-shaped dict, with its "axes" as columns."""
    keys = list(group.get("axes", {}))
    summaries = [(entry, Path(entry["run_dir"]), read_summary(Path(entry["run_dir"]))) for entry in group["runs"]]
    extra = _optional_columns([rec for _, _, s in summaries for trial in s["trials"] for rec in trial["rounds"]])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run_id", *keys, *ROUND_COLUMNS, *extra])
    for entry, run_dir, summary in summaries:
        for t, trial in enumerate(summary["trials"]):
            for rec in trial["rounds"]:
                writer.writerow([csv_text(v) for v in [run_dir.name, *(entry["swept"].get(k) for k in keys), t,
                                                       trial.get("seed"), *(rec.get(c) for c in ROUND_COLUMNS[2:]),
                                                       *(rec.get(c) for c in extra)]])
    return out.getvalue()


def _group_json(folder: Path, group_json: Any) -> str:
    """group.json, plus "mask_overlap": the runs' Jaccard matrix at their last common round."""
    from lth_tui.sweeps import read_group

    data = json.loads(group_json(folder))
    run_dirs = [Path(e["run_dir"]) for e in read_group(folder)["runs"]]
    if len(run_dirs) > 1:
        try:
            overlap = group_overlap(run_dirs)
        except Exception as exc:  # a damaged member's mask must not lose the rest
            overlap = {"error": f"{type(exc).__name__}: {exc}"}
        if overlap is not None:
            data["mask_overlap"] = overlap
    return json.dumps(finite(data), indent=1, allow_nan=False) + "\n"


def export_group(folder: Path, fmt: str, output: Path | str | None = None, overwrite: bool = True) -> Path | str:
    """Like export() for a sweep group; files default into the group folder."""
    from lth_tui.sweeps import group_json, read_group

    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r} is not allowed; formats: {', '.join(FORMATS)}")
    folder = Path(folder)
    if fmt == "png":
        if str(output) == "-":
            raise ExportError("png cannot be written to standard output; give -o FILE.png")
        target = check_export_target(Path(output) if output else export_file(folder, "png"))
        refuse_overwrite(target, overwrite)
        to_png([Path(e["run_dir"]) for e in read_group(folder)["runs"]], target)
        return target
    target = None if str(output) == "-" else check_export_target(Path(output) if output else export_file(folder, fmt))
    if target is not None:
        refuse_overwrite(target, overwrite)
    text = {"md": group_markdown, "json": lambda f: _group_json(f, group_json), "csv": group_csv}[fmt](folder)
    if target is None:
        return text
    return _write(target, text)
