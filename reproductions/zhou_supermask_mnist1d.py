"""Zhou et al.'s supermasks on MNIST-1D: accuracy of the untrained masked network, criterion × mask-1.

Claim (Zhou, Lan, Liu & Yosinski 2019, §5): masks found by pruning are "supermasks": applied to
the untrained network they give far better than chance accuracy, best with the
`large_final_same_sign` criterion and `signed_constant` weights (86% on MNIST FC in the paper's
abstract; the paper has no MNIST-1D figure, chance is 10%).

    python reproductions/zhou_supermask_mnist1d.py     # 10 runs x 2 trials, preset zhou-supermask-mnist1d

Each cell is `supermask_accuracy` (test accuracy of the masked network before the round's
training, with its mask-1 weights), mean ± std over trials, by weights remaining.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_driver import (  # noqa: E402
    Variant,
    common_arguments,
    markdown_table,
    mean_std,
    per_round,
    percent,
    report,
    run_all,
    weights_column,
)

PRESET = "zhou-supermask-mnist1d"
CRITERIA = ("large_final", "large_final_same_sign", "magnitude_increase", "movement", "random")
MASK1 = ("rewind", "signed_constant")
VARIANTS = [Variant(f"{c} / {m}", {"prune.criterion": c, "prune.mask1": m, "prune.mask0": "zero"})
            for c in CRITERIA for m in MASK1]


def main() -> None:
    args = common_arguments(__doc__.splitlines()[0], trials=2, preset=PRESET).parse_args()
    started = time.perf_counter()
    finished = run_all(VARIANTS, args)
    weights = weights_column(finished[0].summary)
    shown = list(range(1, len(weights)))          # round 0 is the dense init: the same 10% for all
    header = ["criterion / mask-1"] + [f"{100 * weights[r]:.1f}%" for r in shown]
    rows = []
    for f in finished:
        values = per_round(f.summary, "supermask_accuracy")
        rows.append([f.variant.label] + [percent(mean_std(values[r])) if r < len(values) else "–" for r in shown])
    report(f"Supermask accuracy (untrained masked net) by weights remaining, MNIST-1D ({args.preset}, "
           f"{args.trials} trials)", finished, markdown_table(header, rows), started)


if __name__ == "__main__":
    main()
