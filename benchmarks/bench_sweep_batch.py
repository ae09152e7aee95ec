"""Benchmark 11: a 12-run LeNet-300-100 sweep trained together (engine/sweep_batch.py) against one run.

The sweep is criteria (large_final, random, magnitude_increase) × mask-1 (rewind,
random_reinit) × seeds (0, 1): 12 runs of 2 rounds on MNIST-shaped synthetic data (no
downloads). Contenders, in turn: one of its runs alone (`engine.runner.execute`) and all 12
together (`execute_together`, default strategy: bmm on a GPU, loop on a CPU). Target on a GPU:
the 12 together in ≤ 3× the time of one. On a CPU the loop strategy does the 12 runs' work
one after another (batching buys nothing on a busy CPU), so about 12× is expected there.

    python benchmarks/bench_sweep_batch.py --device cuda [--iterations 2000] [--repeats 3]
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import harness

from engine.config import from_dict
from engine.runner import execute
from engine.store import create_run
from engine.sweep_batch import execute_together

CRITERIA = ("large_final", "random", "magnitude_increase")
MASK1 = ("rewind", "random_reinit")
SEEDS = (0, 1)


def main() -> int:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=300)
    args = p.parse_args()
    device = harness.setup(args)
    data = harness.synthetic_dataset("mnist", 6000, 500, 1000, device)
    with tempfile.TemporaryDirectory() as tmp:
        def configs() -> list:
            return [from_dict({"name": "sweep", "device": args.device, "seed": seed,
                               "model": {"name": "lenet-300-100"},
                               "train": {"iterations": args.iterations, "eval_every": args.iterations,
                                         "batch_size": 60},
                               "prune": {"rounds": 1, "criterion": c, "mask1": m}})
                    for c, m, seed in itertools.product(CRITERIA, MASK1, SEEDS)]

        def one() -> None:
            run_dir = create_run(configs()[0], Path(tmp) / "alone", preset="sweep")
            assert execute(run_dir, data=data) == "done"

        def together() -> None:
            dirs = [create_run(c, Path(tmp) / "together", preset="sweep") for c in configs()]
            assert set(execute_together(dirs, data=data).values()) == {"done"}

        times = harness.alternate({"one run": one, "12 runs together": together}, args.repeats, device)
    ratio = times["12 runs together"] / times["one run"]
    harness.table(f"11. 12-run LeNet-300-100 sweep together vs one run ({harness.machine(device)})",
                  ["contender", "seconds", "ratio to one run"],
                  [["one run (2 rounds)", times["one run"], 1.0],
                   ["12 runs together", times["12 runs together"], ratio]],
                  [f"{args.iterations} iterations per round, batch 60; target on a GPU ≤ 3×: "
                   f"{harness.verdict(ratio, 3.0)}" + ("" if device.type == "cuda" else
                                                      " (CPU: the loop strategy, about 12× expected; not the target)")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
