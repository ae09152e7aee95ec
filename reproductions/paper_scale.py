"""The paper-scale runs, for a GPU box: tickets vs the random-reinit control at the papers' sizes.

    python reproductions/paper_scale.py --device cuda --data-dir ~/data --download
    python reproductions/paper_scale.py --device cuda --only lenet-mnist,resnet20-cifar10

Presets (see `lth-tui presets`): `lenet-mnist` (Frankle & Carbin 2019: LeNet-300-100, Adam
1.2e-3, 50k iterations, fc 20% / output 10%), `conv2-cifar10`, `conv4-cifar10`, `conv6-cifar10`
(Frankle & Carbin's Conv-2/4/6), `resnet20-cifar10` (OpenLTH's ResNet-20 recipe, global 20%).
Each preset runs twice, as the ticket (rewind to θ0) and as the random-reinit control, with
`--trials` seeds; the table prints accuracy (early stop and best over training) by weights
remaining. These take hours per preset even on a GPU; none has run yet in this repository.
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
    per_round,
    percent,
    report,
    run_all,
    weights_column,
)

PRESETS = ("lenet-mnist", "conv2-cifar10", "conv4-cifar10", "conv6-cifar10", "resnet20-cifar10")


def main() -> None:
    parser = common_arguments(__doc__.splitlines()[0], trials=2, preset=PRESETS[0], jobs=1)
    parser.add_argument("--only", default=",".join(PRESETS), help="comma-separated presets (default all)")
    args = parser.parse_args()
    for preset in args.only.split(","):
        started = time.perf_counter()
        variants = [Variant("ticket", {"prune.mask1": "rewind"}, preset=preset),
                    Variant("random reinit", {"prune.mask1": "random_reinit"}, preset=preset)]
        finished = run_all(variants, args)
        best = accuracy_key(finished[0].summary, ("test_accuracy_best", "test_accuracy_at_early_stop"))
        weights = weights_column(finished[0].summary)
        rows = []
        for r, w in enumerate(weights):
            row = [str(r), f"{100 * w:.2f}" if w is not None else "–"]
            for f in finished:
                row.append(percent(mean_std(per_round(f.summary, "test_accuracy_at_early_stop")[r])))
                row.append(percent(mean_std(per_round(f.summary, best)[r])))
            rows.append(row)
        header = ["round", "weights %"] + [f"{f.variant.label} {k} %" for f in finished for k in ("early-stop", "best")]
        report(f"{preset} ({args.trials} trials, {args.device})", finished, markdown_table(header, rows), started)


if __name__ == "__main__":
    main()
