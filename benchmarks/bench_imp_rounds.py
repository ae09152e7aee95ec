"""Benchmark 4: end-to-end IMP rounds per minute, the way the runner does them.

engine.runner.execute on a fresh run dir (run store written, evaluations, pruning, mask-1 /
mask-0 actions: everything a real round does) with the `lenet-mnist` and `resnet20-cifar10`
presets, on synthetic data of MNIST's and CIFAR-10's shape handed to execute as a Dataset
(nothing registered, nothing downloaded). On a CPU the iteration count (and for CIFAR the
training-set size) is cut so the script finishes in a minute or two; the table says what was
run, and projects the preset's full round from the measured time per iteration.

    python benchmarks/bench_imp_rounds.py [--device cuda] [--lenet-iterations 50000] [--resnet-iterations 200]
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import harness  # noqa: F401  (puts the repo root on sys.path)

from engine.config import apply_overrides, from_dict, read_toml, resolve_schedule
from engine.runner import execute
from engine.store import create_run

PRESETS = harness.ROOT / "presets"


def one(args, device, preset: str, shape: str, sizes: tuple[int, int, int], real_train: int, rounds: int,
        iterations: int, eval_every: int) -> list:
    raw = read_toml(PRESETS / f"{preset}.toml")
    full = from_dict(raw)
    full_iterations = resolve_schedule(full, real_train).iterations
    overrides = [f"device={args.device}", "trials=1", f"prune.rounds={rounds - 1}", f"train.iterations={iterations}",
                 f"train.eval_every={eval_every}", "train.milestones=[]", "train.schedule=\"constant\"",
                 f"data.val_size={sizes[1]}"]
    config = from_dict(apply_overrides(raw, overrides), f"{preset} with benchmark overrides")
    data = harness.synthetic_dataset(shape, *sizes, device)
    if full.data.augment:
        from engine.dataset_files import CIFAR10_MEAN, CIFAR10_STD
        from engine.dataset_tensors import RandomCropFlip

        data.augment = RandomCropFlip(padding=4, fill=tuple(-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)))
    walls, per_round = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            run_dir = create_run(config, Path(tmp), preset=preset)
            start = time.perf_counter()
            assert execute(run_dir, data=data) == "done"
            harness.sync(device)
            walls.append(time.perf_counter() - start)
            per_round.append(statistics.fmean(json.loads(p.read_text())["seconds"]
                                              for p in run_dir.glob("trial-0/round-*/result.json")))
    wall = statistics.median(walls)
    round_seconds = statistics.median(per_round)
    rounds_per_minute = 60 * rounds / wall
    # the training part scales with iterations; evaluations with their count (kept in proportion)
    projected_minutes = round_seconds * full_iterations / iterations / 60
    projected = 1 / projected_minutes
    return [preset, f"{shape}, {sizes[0]}/{sizes[1]}/{sizes[2]}", f"{iterations} (preset: {full_iterations})", rounds,
            wall, rounds_per_minute, projected, projected_minutes]


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=1)
    p.add_argument("--lenet-rounds", type=int, default=3, help="rounds per run (round 0 dense, then pruned)")
    p.add_argument("--lenet-iterations", type=int, default=1000)
    p.add_argument("--resnet-rounds", type=int, default=2)
    p.add_argument("--resnet-iterations", type=int, default=10)
    p.add_argument("--cifar-sizes", default="5000,256,256",
                   help="train,val,test examples; CIFAR-10's are 45000,5000,10000 (cut on a CPU)")
    args = p.parse_args(argv)
    device = harness.setup(args)
    cifar = tuple(int(v) for v in args.cifar_sizes.split(","))
    rows = [
        one(args, device, "lenet-mnist", "mnist", (55000, 5000, 10000), 55000, args.lenet_rounds, args.lenet_iterations,
            max(1, args.lenet_iterations // 4)),
        one(args, device, "resnet20-cifar10", "cifar10", cifar, 45000, args.resnet_rounds, args.resnet_iterations,
            args.resnet_iterations),
    ]
    harness.table(f"4. end-to-end IMP rounds ({harness.machine(device)})",
                  ["preset", "data (synthetic train/val/test)", "iterations / round", "rounds", "wall s",
                   "rounds/min (as run)",
                   "projected rounds/min (preset's iterations)", "projected min/round"],
                  rows,
                  ["engine.runner.execute in-process, run store written; 1 trial; schedule constant for the short runs",
                         "projection: measured seconds per round × preset iterations / iterations run",
                         "resnet20: SGD 0.1, momentum 0.9, wd 1e-4, batch 128, crop+flip augmentation, global pruning"])


if __name__ == "__main__":
    main()
