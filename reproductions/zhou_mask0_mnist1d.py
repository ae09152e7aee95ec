"""Zhou et al.'s mask-0 actions on MNIST-1D: zero vs freeze at init vs variants 1 and 2.

Claim (Zhou et al. 2019, §3): setting pruned weights to zero matters; freezing them at their
initial values hurts, and zeroing only the weights that moved towards zero ("variant 1",
`freeze_init_zero_mask`; "variant 2", `freeze_init_zero_all`, which also zeroes shrunk kept
weights) recovers most of it, since pruning by final magnitude moves weights that were heading
to zero all the way there.

    python reproductions/zhou_mask0_mnist1d.py         # 4 runs x 2 trials, preset mnist1d-greydanus

Under the freezing actions the frozen weights still take part in the forward pass, so each
variant is shown against both densities: trainable weights (`weights_remaining`) and the
non-zero weights of the forward pass.
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

PRESET = "mnist1d-greydanus"
MASK0 = ("zero", "freeze_init", "freeze_init_zero_mask", "freeze_init_zero_all")
# `zero` is the preset's own mask-0: that run is tickets_mnist1d.py's ticket, reused when present.
VARIANTS = [Variant(m, {"prune.criterion": "large_final", "prune.mask1": "rewind",
                        **({} if m == "zero" else {"prune.mask0": m})})
            for m in MASK0]
FORWARD_DENSITY = "weights_nonzero"


def main() -> None:
    args = common_arguments(__doc__.splitlines()[0], trials=2, preset=PRESET).parse_args()
    started = time.perf_counter()
    finished = run_all(VARIANTS, args)
    best = accuracy_key(finished[0].summary, ("test_accuracy_best", "test_accuracy_at_early_stop"))
    second = accuracy_key(finished[0].summary, ("test_accuracy_at_early_stop", "test_accuracy_final"))
    header = ["mask-0", "round", "trainable %", "non-zero in forward %", "best test acc %",
              "early-stop acc %" if second == "test_accuracy_at_early_stop" else "final test acc %"]
    rows = []
    for f in finished:
        trainable = weights_column(f.summary)
        forward = weights_column(f.summary, FORWARD_DENSITY)
        accuracy = per_round(f.summary, best)
        early = per_round(f.summary, second)
        for r, w in enumerate(trainable):
            fw = forward[r] if r < len(forward) else None
            rows.append([f.variant.label, str(r), f"{100 * w:.1f}" if w is not None else "–",
                         f"{100 * fw:.1f}" if fw is not None else "–",
                         percent(mean_std(accuracy[r])), percent(mean_std(early[r]))])
    report(f"Mask-0 actions against both densities, MNIST-1D ({args.preset}, {args.trials} trials)", finished,
           markdown_table(header, rows), started)


if __name__ == "__main__":
    main()
