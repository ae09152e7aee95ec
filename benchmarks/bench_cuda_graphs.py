"""Benchmark 13: the masked training step as one CUDA graph (train.cuda_graphs) against eager.

Both contenders are engine.training.train_round on the same synthetic round as benchmark 1
(harness.synthetic_round: 80% of every prunable weight pruned, eval_every = iterations so the
round's two evaluations cost next to nothing), once with train.cuda_graphs = false and once
with true; they alternate in one process and the median of each is taken. Each graphed round
pays its own warm-up (3 eager steps) and capture, as a real round does. Rows: Adam with the
`zero` and the `freeze_init` mask-0 actions, SGD with momentum, and Adam under a cosine
schedule (the learning-rate tensor is rewritten every step). "ratio" is graphed / eager time:
below 1 is a win. On a CPU there is nothing to measure: the script says so and exits 0.

    python benchmarks/bench_cuda_graphs.py --device cuda [--model lenet-300-100] [--iterations 400]
"""

from __future__ import annotations

import dataclasses
import sys

import harness  # noqa: F401  (puts the repo root on sys.path)
import torch

HEADER = ["model, optimizer, mask-0", "eager steps/s", "graphed steps/s", "graphed/eager time", "target", "result"]
TARGET = 1.00


def main(argv=None) -> int:
    p = harness.round_parser(__doc__.splitlines()[0], iterations=400)
    args = p.parse_args(argv)
    if torch.device(args.device).type != "cuda":
        print(f"bench_cuda_graphs.py: CUDA graphs need a CUDA device (--device cuda); "
              f"nothing to measure on {args.device}")
        return 0
    device = harness.setup(args)
    cases = {"adam": {"optimizer": "adam", "lr": 1.2e-3}, "sgd": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9},
             "adam-cosine": {"optimizer": "adam", "lr": 1.2e-3, "schedule": "cosine"}}
    contenders, labels = {}, {}
    for name, train in cases.items():
        case = harness.synthetic_round(args, device, **train)
        graphed = dataclasses.replace(case, config=dataclasses.replace(
            case.config, train=dataclasses.replace(case.config.train, cuda_graphs=True)))
        actions = ("zero", "freeze_init") if name == "adam" else ("zero",)
        for action in actions:
            freeze = action == "freeze_init"
            contenders[f"{name}/{action}/eager"] = case.ours(freeze_init=freeze)
            contenders[f"{name}/{action}/graphed"] = graphed.ours(freeze_init=freeze)
            labels[f"{name}/{action}"] = f"{args.model}, {name}, {action}"
    times = harness.alternate(contenders, args.repeats, device)
    rows = []
    for key, label in labels.items():
        eager, graphed = times[f"{key}/eager"], times[f"{key}/graphed"]
        ratio = graphed / eager
        rows.append([label, args.iterations / eager, args.iterations / graphed, ratio, f"≤ {TARGET:.2f}",
                     harness.verdict(ratio, TARGET)])
    harness.table(f"13. CUDA-graphed masked step vs eager ({harness.machine(device)})", HEADER, rows,
                  [f"{args.pruned:.0%} of every prunable weight pruned; batch {args.batch_size}; "
                   f"{args.iterations} iterations per timing, warm-up and capture included; median of {args.repeats}"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
