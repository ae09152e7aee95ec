"""Benchmark 2: our masked training step against torch.nn.utils.prune's forward-pre-hook masks.

`torch.nn.utils.prune.custom_from_mask` re-parametrises each pruned weight as
`weight_orig * weight_mask`, recomputed by a forward pre-hook on every forward (and the
product differentiated on every backward). Ours (engine.training.train_round) multiplies the
gradients by the mask once per step instead. Same model, data on the device, 80% pruned,
same optimizer. Target: ours faster (ratio < 1).

    python benchmarks/bench_prune_hooks.py [--device cuda] [--model lenet-300-100] [--iterations 300]
"""

from __future__ import annotations

import copy

import harness  # noqa: F401  (puts the repo root on sys.path)
import torch
from torch.nn.utils import prune

TARGET = 1.0
HEADER = ["model", "hooked loop's optimizer", "prune-hooks steps/s", "ours steps/s", "ours/hooks time", "target",
          "result"]


def main(argv=None) -> None:
    args = harness.round_parser(__doc__.splitlines()[0], iterations=300).parse_args(argv)
    device = harness.setup(args)
    case = harness.synthetic_round(args, device, optimizer="adam", lr=1.2e-3)

    # The same start weights and masks, as torch.nn.utils.prune re-parametrisations.
    hooked = copy.deepcopy(case.model)
    modules = dict(hooked.named_modules())
    for name, mask in case.masks.items():
        prune.custom_from_mask(modules[name.rpartition(".")[0]], "weight", mask.to(device))
    hooked_start = {k: v.detach().clone() for k, v in hooked.state_dict().items()}

    def hooks(**extra):
        def go():
            hooked.load_state_dict(hooked_start)
            harness.device_loop(hooked, case.data, args.iterations, args.batch_size,
                                lambda params: torch.optim.Adam(params, lr=1.2e-3, **extra), seed=1)
        return go

    times = harness.alternate({"hooks": hooks(), "hooks-fused": hooks(fused=True), "ours": case.ours()}, args.repeats,
                              device)
    rows = []
    for key, what in (("hooks", "Adam() defaults"), ("hooks-fused", "Adam(fused=True)")):
        ratio = times["ours"] / times[key]
        rows.append([args.model, what, args.iterations / times[key], args.iterations / times["ours"], ratio,
                     f"< {TARGET:.2f}", "PASS" if ratio < TARGET else "MISS"])
    harness.table(f"2. masked step vs torch.nn.utils.prune hooks ({harness.machine(device)})", HEADER, rows,
                  [f"{args.pruned:.0%} pruned, zero mask-0 action; batch {args.batch_size}; {args.iterations} "
                   f"iterations per timing; median of {args.repeats}"])


if __name__ == "__main__":
    main()
