"""Benchmark 3: our on-device batching against an OpenLTH-style DataLoader-fed loop.

OpenLTH feeds every step from a torch DataLoader (shuffling sampler, per-example
__getitem__, default collate) and moves each batch to the device. This is its cheapest form:
a TensorDataset of ready-normalised CPU tensors (no per-image transforms), DataLoader with
shuffle=True, drop_last=True, pin_memory on a GPU, `num_workers` workers (default 0), batch
`.to(device)` every step, plain dense training with Adam. Ours is engine.training.train_round
(80% pruned, zero) on the same data held on the device. MNIST- and CIFAR-10-shaped synthetic
data (60000 / 50000 examples by default). Target: ours ≥ 3× the DataLoader loop's steps/s.

    python benchmarks/bench_dataloader.py [--device cuda] [--model lenet-300-100] [--cifar-model conv2]
"""

from __future__ import annotations

import harness  # noqa: F401  (puts the repo root on sys.path)
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from engine.config import from_dict, resolve_schedule
from engine.models import build_model
from engine.training import TrainJob, generator, train_round

TARGET = 3.0


def loader_loop(model, loader, device, iterations: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    model.train()
    step = 0
    while step < iterations:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step == iterations:
                return


def one(args, device, shape: str, model_name: str, n_train: int) -> list:
    host = harness.synthetic_dataset(shape, n_train, 64, 64, torch.device("cpu"))
    data = host.to(device)
    config = from_dict({"model": {"name": model_name}, "train": {"optimizer": "adam", "lr": 1.2e-3, "batch_size": args.batch_size,
                                                               "iterations": args.iterations, "eval_every": args.iterations}})
    schedule = resolve_schedule(config, len(data.train_x))
    model = build_model(model_name, input_shape=data.input_shape, num_classes=10, generator=generator(0, "init")).to(device)
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    masks = harness.random_masks(model, keep=1 - args.pruned)
    loader = DataLoader(TensorDataset(host.train_x, host.train_y), batch_size=args.batch_size, shuffle=True, drop_last=True,
                        num_workers=args.workers, pin_memory=device.type == "cuda",
                        persistent_workers=args.workers > 0, generator=torch.Generator().manual_seed(1))

    def theirs():
        model.load_state_dict(theta0)
        loader_loop(model, loader, device, args.iterations)

    def ours():
        model.load_state_dict(theta0)
        train_round(model, TrainJob(data=data, config=config.train, schedule=schedule, masks=masks, frozen=None, seed=1))

    times = harness.alternate({"dataloader": theirs, "ours": ours}, args.repeats, device)
    speedup = times["dataloader"] / times["ours"]
    return [f"{shape} {tuple(data.input_shape)}, {model_name}", n_train, args.iterations / times["dataloader"],
            args.iterations / times["ours"], speedup, f"≥ {TARGET:.1f}×", harness.verdict(speedup, TARGET, lower_is_better=False)]


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet-300-100", help="model for the MNIST-shaped data")
    p.add_argument("--cifar-model", default="lenet-300-100", help="model for the CIFAR-shaped data (e.g. conv2 on a GPU)")
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--mnist-size", type=int, default=60000)
    p.add_argument("--cifar-size", type=int, default=50000)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--pruned", type=float, default=0.8)
    args = p.parse_args(argv)
    device = harness.setup(args)
    rows = [one(args, device, "mnist", args.model, args.mnist_size),
            one(args, device, "cifar10", args.cifar_model, args.cifar_size)]
    harness.table(f"3. on-device batches vs a DataLoader-fed loop ({harness.machine(device)})",
                  ["data, model", "train examples", "DataLoader steps/s", "ours steps/s", "speed-up", "target", "result"],
                  rows, [f"DataLoader: TensorDataset, shuffle, num_workers={args.workers}, batch {args.batch_size}, "
                         f"dense Adam; ours: {args.pruned:.0%} pruned (zero); {args.iterations} iterations per timing; "
                         f"median of {args.repeats}"])


if __name__ == "__main__":
    main()
