"""Learned supermask vs edge-popup vs the same network trained, on MNIST-1D.

Claims: Zhou et al. 2019 (§5.1): a mask learned over frozen random weights (signed constants,
Bernoulli sampling with a straight-through gradient) comes close to training the weights;
Ramanujan et al. 2020 (edge-popup): the top-k% scores per layer over signed Kaiming constants
does the same at a fixed density.

    python reproductions/mask_training_mnist1d.py      # 3 runs x 2 trials

The trained baseline is the same MLP 256-256 on the same data, trained densely with the IMP
recipe of `mnist1d-lottery` (Adam 1e-3, 2,000 iterations).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_driver import Variant, common_arguments, markdown_table, mean_std, per_round, percent, report, run_all  # noqa: E402

VARIANTS = [
    Variant("learned supermask", preset="supermask-mnist1d"),
    Variant("edge-popup (k = 0.5)", preset="edge-popup-mnist1d"),
    Variant("same net trained", {"model.hidden": [256, 256], "train.iterations": 2000, "prune.rounds": 0},
            preset="mnist1d-lottery"),
]


def main() -> None:
    args = common_arguments(__doc__.splitlines()[0], trials=2, preset="supermask-mnist1d").parse_args()
    started = time.perf_counter()
    finished = run_all(VARIANTS, args)
    header = ["network", "weights kept %", "final test acc %", "early-stop test acc %"]
    rows = []
    for f in finished:
        weights = per_round(f.summary, "weights_remaining")[-1]
        final = per_round(f.summary, "test_accuracy_final")[-1]
        early = per_round(f.summary, "test_accuracy_at_early_stop")[-1]
        rows.append([f.variant.label, percent(mean_std(weights)), percent(mean_std(final)), percent(mean_std(early))])
    report(f"Mask training vs weight training, MNIST-1D ({args.trials} trials; last round of each run)", finished,
           markdown_table(header, rows), started)


if __name__ == "__main__":
    main()
