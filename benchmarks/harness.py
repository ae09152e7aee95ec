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
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))

from engine.datasets import Dataset  # noqa: E402

SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions per contender (median taken)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: steadiest on a shared CPU; 0: torch's default)")
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
    from engine.models import layer_kinds

    g = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    masks = {}
    for name in layer_kinds(model):
        n = params[name].numel()
        flat = torch.zeros(n, dtype=torch.bool)
        flat[torch.randperm(n, generator=g)[: max(1, round(keep * n))]] = True
        masks[name] = flat.reshape(params[name].shape)
    return masks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def alternate(contenders: dict[str, Callable[[], Any]], repeats: int, device: torch.device, warmup: int = 1) -> dict[str, float]:
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
