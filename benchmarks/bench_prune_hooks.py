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
import torch.nn.functional as F
from torch.nn.utils import prune

from engine.config import from_dict, resolve_schedule
from engine.models import build_model
from engine.training import TrainJob, generator, train_round

TARGET = 1.0


def hooked_loop(model, data, iterations: int, batch: int, make_opt, seed: int) -> None:
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
    shape = "mnist" if args.model in ("mlp", "lenet-300-100") else "cifar10"
    data = harness.synthetic_dataset(shape, args.train_size, 64, 64, device)
    config = from_dict({"model": {"name": args.model}, "train": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": args.batch_size,
                                                                 "iterations": args.iterations, "eval_every": args.iterations}})
    schedule = resolve_schedule(config, len(data.train_x))
    model = build_model(args.model, input_shape=data.input_shape, num_classes=10, generator=generator(0, "init")).to(device)
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = harness.random_masks(model, keep=1 - args.pruned)

    hooked = copy.deepcopy(model)
    modules = dict(hooked.named_modules())
    for name, mask in masks.items():
        prune.custom_from_mask(modules[name.rpartition(".")[0]], "weight", mask.to(device))
    hooked_start = {k: v.detach().clone() for k, v in hooked.state_dict().items()}

    def hooks(**extra):
        def go():
            hooked.load_state_dict(hooked_start)
            hooked_loop(hooked, data, args.iterations, args.batch_size,
                        lambda params: torch.optim.Adam(params, lr=1.2e-3, **extra), seed=1)
        return go

    def ours():
        model.load_state_dict(theta0)
        train_round(model, TrainJob(data=data, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=1))

    times = harness.alternate({"hooks": hooks(), "hooks-fused": hooks(fused=True), "ours": ours}, args.repeats, device)
    rows = []
    for key, what in (("hooks", "Adam() defaults"), ("hooks-fused", "Adam(fused=True)")):
        ratio = times["ours"] / times[key]
        rows.append([args.model, what, args.iterations / times[key], args.iterations / times["ours"], ratio,
                     f"< {TARGET:.2f}", "PASS" if ratio < TARGET else "MISS"])
    return rows


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet-300-100")
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--pruned", type=float, default=0.8)
    args = p.parse_args(argv)
    rows = run(args)
    harness.table(f"2. masked step vs torch.nn.utils.prune hooks ({harness.machine(torch.device(args.device))})",
                  ["model", "hooked loop's optimizer", "prune-hooks steps/s", "ours steps/s", "ours/hooks time",
                   "target", "result"],
                  rows, [f"{args.pruned:.0%} pruned, zero mask-0 action; batch {args.batch_size}; {args.iterations} "
                         f"iterations per timing; median of {args.repeats}"])


if __name__ == "__main__":
    main()
