"""Benchmark 1: our masked training step against a plain dense PyTorch loop.

Ours is engine.training.train_round itself (the production code path: masks on gradients
after weight decay, `w*mask + fill` after the step, learning-rate schedule, loss
bookkeeping), run with eval_every = iterations on a tiny validation/test split so the two
evaluations it always makes cost next to nothing. 80% of every prunable weight is pruned,
with the `zero` and with the `freeze_init` mask-0 action. The plain loop is the shortest
honest dense loop over the same model, data (held on the device, shuffled by randperm every
epoch) and optimizer. Target: ours ≤ 1.10× the plain loop's time.

    python benchmarks/bench_masked_step.py [--device cuda] [--model lenet-300-100] [--iterations 400]
"""

from __future__ import annotations

import harness  # noqa: F401  (puts the repo root on sys.path)
import torch

TARGET = 1.10
HEADER = ["model, mask-0", "plain loop's optimizer", "plain steps/s", "ours steps/s", "ours/plain time", "target",
          "result"]


def main(argv=None) -> None:
    p = harness.round_parser(__doc__.splitlines()[0], iterations=400)
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    p.add_argument("--lr", type=float, default=1.2e-3)
    args = p.parse_args(argv)
    device = harness.setup(args)
    train = {"optimizer": args.optimizer, "lr": args.lr}
    if args.optimizer == "sgd":
        train.update(momentum=0.9)
    opt_name = "SGD" if args.optimizer == "sgd" else "Adam"
    case = harness.synthetic_round(args, device, **train)

    def optimizer(**extra):
        def make_opt(params):
            if args.optimizer == "sgd":
                return torch.optim.SGD(params, lr=args.lr, momentum=0.9, **extra)
            return torch.optim.Adam(params, lr=args.lr, **extra)
        return make_opt

    def plain(**extra):
        def go():
            case.model.load_state_dict(case.theta0)
            harness.device_loop(case.model, case.data, args.iterations, args.batch_size, optimizer(**extra), seed=1)
        return go

    times = harness.alternate({"plain": plain(), "plain-fused": plain(fused=True), "zero": case.ours(),
                               "freeze_init": case.ours(freeze_init=True)}, args.repeats, device)
    rows = []
    for baseline, what in (("plain", f"torch.optim.{opt_name}() defaults"), ("plain-fused", f"{opt_name}(fused=True)")):
        for action in ("zero", "freeze_init"):
            ratio = times[action] / times[baseline]
            rows.append([f"{args.model}, {action}", what, args.iterations / times[baseline],
                         args.iterations / times[action], ratio, f"≤ {TARGET:.2f}", harness.verdict(ratio, TARGET)])
    harness.table(f"1. masked step vs plain dense loop ({harness.machine(device)})", HEADER, rows,
                  [f"{args.pruned:.0%} of every prunable weight pruned; batch {args.batch_size}; "
                   f"{args.iterations} iterations per timing; median of {args.repeats}"])


if __name__ == "__main__":
    main()
