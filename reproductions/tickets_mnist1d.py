"""Tickets vs random pruning vs random reinit on MNIST-1D (Frankle & Carbin's control, Greydanus' notebook).

Claim: a lottery ticket (magnitude pruning, rewind to θ0) trains to at least the dense
network's accuracy down to a few percent of the weights, while a random mask of the same
size, or the ticket's mask with freshly drawn weights, falls behind.

    python reproductions/tickets_mnist1d.py            # 3 runs x 2 trials, preset mnist1d-greydanus

Accuracy is the best test accuracy over training (what Greydanus' notebook reports as
"max_acc"), mean ± std over trials; the early-stop accuracy (the final one when the preset
holds nothing out, as mnist1d-greydanus) is shown beside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_driver import (  # noqa: E402
    Variant,
    accuracy_key,
    common_arguments,
    markdown_table,
    mean_std,
    nearest,
    per_round,
    percent,
    report,
    run_all,
    weights_column,
)

PRESET = "mnist1d-greydanus"

# Greydanus' lottery-tickets notebook (greydanus/mnist1d, notebooks/lottery-tickets.ipynb),
# read off its printed output: mean over its 2 trials of "max_acc" (best test accuracy over
# training, %) for magnitude and random pruning, by weights remaining. Its sparsity counts each
# layer's weights and biases together and re-scores all of them every round.
NOTEBOOK = {
    1.00: (65.9, 64.5), 0.80: (66.8, 64.4), 0.65: (66.8, 65.6), 0.51: (69.5, 64.8),
    0.41: (71.3, 66.4), 0.31: (71.6, 66.7), 0.20: (72.5, 70.1), 0.15: (73.8, 67.2),
    0.10: (74.2, 65.2), 0.07: (73.5, 62.0), 0.05: (71.3, 57.0), 0.04: (71.0, 50.9),
    0.03: (68.7, 42.5), 0.02: (64.5, 31.2), 0.01: (42.1, 17.0),
}

VARIANTS = [
    Variant("ticket", {"prune.criterion": "large_final", "prune.mask1": "rewind"}),
    Variant("random pruning", {"prune.criterion": "random", "prune.mask1": "rewind"}),
    Variant("random reinit", {"prune.criterion": "large_final", "prune.mask1": "random_reinit"}),
]


def main() -> None:
    args = common_arguments(__doc__.splitlines()[0], trials=2, preset=PRESET).parse_args()
    started = time.perf_counter()
    finished = run_all(VARIANTS, args)
    ticket = finished[0].summary
    best = accuracy_key(ticket, ("test_accuracy_best", "test_accuracy_at_early_stop"))
    second = accuracy_key(ticket, ("test_accuracy_at_early_stop", "test_accuracy_final"))
    second_name = "early-stop" if second == "test_accuracy_at_early_stop" else "final"
    weights = weights_column(ticket)
    columns = [(f, per_round(f.summary, best), per_round(f.summary, second)) for f in finished]
    rows = []
    for r, w in enumerate(weights):
        row = [str(r), f"{100 * w:.1f}" if w is not None else "–"]
        for _, best_values, es_values in columns:
            row.append(percent(mean_std(best_values[r])) if r < len(best_values) else "–")
            row.append(percent(mean_std(es_values[r])) if r < len(es_values) else "–")
        ref = nearest(NOTEBOOK, w, tolerance=0.15)
        row += [f"{ref[0]:.1f}" if ref else "–", f"{ref[1]:.1f}" if ref else "–"]
        rows.append(row)
    header = ["round", "weights %"]
    for f, _, _ in columns:
        header += [f"{f.variant.label} best %", f"{f.variant.label} {second_name} %"]
    header += ["notebook magnitude best %", "notebook random best %"]
    report(f"Tickets vs random pruning vs random reinit, MNIST-1D ({args.preset}, {args.trials} trials)", finished,
           markdown_table(header, rows), started)


if __name__ == "__main__":
    main()
