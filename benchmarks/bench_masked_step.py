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
import torch.nn.functional as F

from engine.config import from_dict, resolve_schedule
from engine.models import build_model
from engine.training import TrainJob, generator, train_round

TARGET = 1.10


def plain_loop(model, data, iterations: int, batch: int, make_opt, seed: int) -> None:
    opt = make_opt(model.parameters())
    model.train()
    n = len(data.train_x)
    per_epoch = n // batch
    g = torch.Generator().manual_seed(seed)
    order = None
    for step in range(iterations):
        position = step % per_epoch
        if position == 0:
            order = torch.randperm(n, generator=g).to(data.train_x.device)
        index = order[position * batch:(position + 1) * batch]
        loss = F.cross_entropy(model(data.train_x[index]), data.train_y[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def run(args) -> list[list]:
    device = harness.setup(args)
    shape = "cifar10" if args.model in ("conv2", "conv4", "conv6", "vgg16", "vgg19", "resnet20") else "mnist"
    data = harness.synthetic_dataset(shape, args.train_size, 64, 64, device)
    train = {"optimizer": args.optimizer, "lr": args.lr, "batch_size": args.batch_size, "iterations": args.iterations,
             "eval_every": args.iterations}
    if args.optimizer == "sgd":
        train.update(momentum=0.9)
    opt_name = "SGD" if args.optimizer == "sgd" else "Adam"
    config = from_dict({"model": {"name": args.model}, "train": train})
    schedule = resolve_schedule(config, len(data.train_x))
    model = build_model(args.model, input_shape=data.input_shape, num_classes=10, generator=generator(0, "init")).to(device)
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = harness.random_masks(model, keep=1 - args.pruned)
    frozen = {n: theta0[n] for n in masks}

    def optimizer(**extra):
        def make_opt(params):
            if args.optimizer == "sgd":
                return torch.optim.SGD(params, lr=args.lr, momentum=0.9, **extra)
            return torch.optim.Adam(params, lr=args.lr, **extra)
        return make_opt

    def plain(**extra):
        def go():
            model.load_state_dict(theta0)
            plain_loop(model, data, args.iterations, args.batch_size, optimizer(**extra), seed=1)
        return go

    def ours(action):
        def go():
            model.load_state_dict(theta0)
            train_round(model, TrainJob(data=data, config=config.train, schedule=schedule, masks=masks,
                                        frozen=frozen if action == "freeze_init" else None, seed=1))
        return go

    times = harness.alternate({"plain": plain(), "plain-fused": plain(fused=True), "zero": ours("zero"),
                               "freeze_init": ours("freeze_init")}, args.repeats, device)
    rows = []
    for baseline, what in (("plain", f"torch.optim.{opt_name}() defaults"), ("plain-fused", f"{opt_name}(fused=True)")):
        for action in ("zero", "freeze_init"):
            ratio = times[action] / times[baseline]
            rows.append([f"{args.model}, {action}", what, args.iterations / times[baseline],
                         args.iterations / times[action], ratio, f"≤ {TARGET:.2f}", harness.verdict(ratio, TARGET)])
    return rows


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet-300-100")
    p.add_argument("--optimizer", default="adam", choices=("adam", "sgd"))
    p.add_argument("--lr", type=float, default=1.2e-3)
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--iterations", type=int, default=400)
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--pruned", type=float, default=0.8)
    args = p.parse_args(argv)
    rows = run(args)
    harness.table(f"1. masked step vs plain dense loop ({harness.machine(torch.device(args.device))})",
                  ["model, mask-0", "plain loop's optimizer", "plain steps/s", "ours steps/s", "ours/plain time",
                   "target", "result"],
                  rows, [f"{args.pruned:.0%} of every prunable weight pruned; batch {args.batch_size}; "
                         f"{args.iterations} iterations per timing; median of {args.repeats}"])


if __name__ == "__main__":
    main()
