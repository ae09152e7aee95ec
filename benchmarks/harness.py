"""What every benchmark script shares: synthetic data, masks, timing and the printed table.

Timings are only ever compared within one process: contenders are run alternately
(A B A B ...), each `repeats` times after a warm-up, and the median of each is taken, so a
neighbour stealing the CPU for a while hurts both sides alike. A ratio is "ours / theirs"
in wall time (lower is better) unless a row says otherwise.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

from engine.config import ExperimentConfig, Schedule, from_dict, resolve_schedule  # noqa: E402
from engine.datasets import Dataset  # noqa: E402
from engine.models import build_model, layer_kinds  # noqa: E402
from engine.training import TrainJob, generator, train_round  # noqa: E402

SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender (median taken)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: steadiest on a shared CPU; 0: torch's default)")
    return p


def round_parser(description: str, iterations: int) -> argparse.ArgumentParser:
    """`parser()` plus the flags of a `synthetic_round` case, one set for benchmarks 1 and 2.

    Shared so the two scripts take their case the same way and its defaults cannot drift apart.
    """
    p = parser(description)
    p.add_argument("--model", default="lenet-300-100")
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--iterations", type=int, default=iterations)
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--pruned", type=float, default=0.8, help="fraction of every prunable weight masked")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: no CUDA GPU is visible here")
    return device


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    return f"{what}; torch {torch.__version__}; python {platform.python_version()}"


def synthetic_dataset(shape: str | tuple[int, ...], n_train: int, n_val: int, n_test: int, device: torch.device,
                      seed: int = 0, num_classes: int = 10) -> Dataset:
    """Normalised random inputs of a dataset's shape with labels a linear teacher can learn."""
    dims = SHAPES[shape] if isinstance(shape, str) else tuple(shape)
    g = torch.Generator().manual_seed(seed)
    total = n_train + n_val + n_test
    x = torch.randn((total, *dims), generator=g)
    teacher = torch.randn((x[0].numel(), num_classes), generator=g)
    y = (x.flatten(1) @ teacher).argmax(1)
    a, b = n_train, n_train + n_val
    return Dataset(name=f"synthetic-{shape if isinstance(shape, str) else 'x'.join(map(str, dims))}",
                   train_x=x[:a].to(device), train_y=y[:a].to(device), val_x=x[a:b].to(device), val_y=y[a:b].to(device),
                   test_x=x[b:].to(device), test_y=y[b:].to(device), num_classes=num_classes)


def random_masks(model: torch.nn.Module, keep: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """Bool masks keeping exactly round(keep × size) random positions of every prunable weight."""
    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    masks = {}
    for name in layer_kinds(model):
        n = params[name].numel()
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=g)[: max(1, round(keep * n))]] = True
        masks[name] = flat.reshape(params[name].shape)
    return masks


@dataclass
class PrunedRound:
    """One model with its start weights θ0, random masks and a round's config, built once per case.

    Benchmarks 1–3 each time `train_round` on this same set-up against their own baseline;
    building it in one place keeps "ours" identical across them (same θ0, masks, schedule,
    eval_every = iterations so the round's two evaluations cost next to nothing).
    """

    data: Dataset
    config: ExperimentConfig
    schedule: Schedule
    model: torch.nn.Module
    theta0: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]

    def ours(self, freeze_init: bool = False, data: Dataset | None = None) -> Callable[[], None]:
        """A contender: reset the model to θ0, then one `train_round` (mask-0 `zero`, or `freeze_init`).

        `data` replaces the round's dataset (e.g. the same tensors with an `augment` set).
        """
        frozen = {name: self.theta0[name] for name in self.masks} if freeze_init else None
        data = self.data if data is None else data

        def go() -> None:
            self.model.load_state_dict(self.theta0)
            train_round(self.model,
                        TrainJob(data=data, config=self.config.train, schedule=self.schedule, masks=self.masks,
                                             frozen=frozen, seed=1))
        return go


def pruned_round(model_name: str, data: Dataset, device: torch.device, *, batch_size: int, iterations: int,
                 pruned: float, **train: Any) -> PrunedRound:
    """Build `model_name` for `data` (init seed 0) with `pruned` of every prunable weight masked at random.

    `train` adds [train] config keys (optimizer, lr, momentum, ...) to the batch size and iterations.
    """
    config = from_dict({"model": {"name": model_name}, "train": {**train, "batch_size": batch_size,
                                                                 "iterations": iterations, "eval_every": iterations}})
    schedule = resolve_schedule(config, len(data.train_x))
    model = build_model(model_name, input_shape=data.input_shape, num_classes=data.num_classes,
                        generator=generator(0, "init")).to(device)
    theta0 = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return PrunedRound(data, config, schedule, model, theta0, random_masks(model, keep=1 - pruned))


def synthetic_round(args: argparse.Namespace, device: torch.device, **train: Any) -> PrunedRound:
    """`pruned_round` from `round_parser`'s flags, on synthetic data of the model's input shape.

    MLPs get MNIST-shaped inputs, conv nets CIFAR-shaped; 64 validation and 64 test examples
    keep train_round's two evaluations next to free.
    """
    shape = "mnist" if args.model in ("mlp", "lenet-300-100") else "cifar10"
    data = synthetic_dataset(shape, args.train_size, 64, 64, device)
    return pruned_round(args.model, data, device, batch_size=args.batch_size, iterations=args.iterations,
                        pruned=args.pruned, **train)


def device_loop(model: torch.nn.Module, data: Dataset, iterations: int, batch: int,
                make_opt: Callable[[Any], torch.optim.Optimizer], seed: int) -> None:
    """The shortest honest dense loop over data held on the device: the baseline benchmarks 1 and 2 share.

    Batches by index from a randperm drawn every epoch (as train_round does), plain
    cross-entropy, `make_opt(model.parameters())` as the optimizer; nothing else. Benchmark 1
    runs it on the plain model, benchmark 2 on the prune-hooked copy.
    """
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


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def alternate(contenders: dict[str, Callable[[], Any]], repeats: int, device: torch.device,
              warmup: int = 1) -> dict[str, float]:
    """Median seconds per contender, run in turn A B C A B C ... after `warmup` untimed turns."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for i in range(repeats):
        names = list(contenders)
        if i % 2:  # alternate the order too, so no contender always runs right after another
            names.reverse()
        for name in names:
            times[name].append(timed(contenders[name], device))
    return {name: statistics.median(values) for name, values in times.items()}


def verdict(ratio: float, target: float, lower_is_better: bool = True) -> str:
    ok = ratio <= target if lower_is_better else ratio >= target
    return "PASS" if ok else "MISS"


def table(title: str, header: list[str], rows: list[list[Any]], notes: list[str] = ()) -> str:
    """A Markdown table (readable in a terminal, pasteable into benchmarks/README.md)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = [f"### {title}", "", "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    if notes:
        lines.append("")
        lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 10000:
            return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)
