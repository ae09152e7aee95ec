"""Benchmark 6: N trials trained together (engine/batched.py) against one trial alone.

One round of `--trials` LeNet-300-100 trials (each its own seed, data order, 80%-pruned mask
and Adam state) through engine.batched.train_rounds with each strategy, against one trial
through engine.training.train_round, and against the N trials one after another. Target on a
GPU: 8 trials in at most 2× the wall time of one. On a CPU (busy with one trial already) the
figures are reported, not judged.

    python benchmarks/bench_parallel_trials.py [--device cuda] [--trials 8] [--iterations 200]
"""

from __future__ import annotations

import harness  # noqa: F401  (puts the repo root on sys.path)

from engine.batched import STRATEGIES, default_strategy, train_rounds
from engine.config import from_dict, resolve_schedule
from engine.models import MLP, build_model
from engine.training import TrainJob, generator, train_round

TARGET = 2.0


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=3)
    p.add_argument("--model", default="lenet-300-100")
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--strategies", default="", help="comma-separated subset of loop,bmm,vmap (default: all that apply)")
    args = p.parse_args(argv)
    device = harness.setup(args)
    shape = "mnist" if args.model in ("mlp", "lenet-300-100") else "cifar10"
    data = harness.synthetic_dataset(shape, args.train_size, 64, 64, device)
    config = from_dict({"model": {"name": args.model},
                        "train": {"batch_size": args.batch_size, "iterations": args.iterations,
                                                               "eval_every": args.iterations}})
    schedule = resolve_schedule(config, len(data.train_x))
    models = [build_model(args.model, input_shape=data.input_shape, num_classes=10,
                          generator=generator(t, "init")).to(device)
              for t in range(args.trials)]
    starts = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in models]
    jobs = [TrainJob(data=data, config=config.train, schedule=schedule, masks=harness.random_masks(m, 0.2, seed=t),
                     frozen=None, seed=100 + t) for t, m in enumerate(models)]

    def reset():
        for m, s in zip(models, starts):
            m.load_state_dict(s)

    def one():
        reset()
        train_round(models[0], jobs[0])

    def sequential():
        reset()
        for m, j in zip(models, jobs):
            train_round(m, j)

    def together(strategy):
        def go():
            reset()
            train_rounds(models, jobs, strategy=strategy)
        return go

    strategies = [s for s in (args.strategies.split(",") if args.strategies else STRATEGIES)
                  if s != "bmm" or type(models[0]) is MLP]
    contenders = {"one": one, "sequential": sequential, **{s: together(s) for s in strategies}}
    times = harness.alternate(contenders, args.repeats, device)
    default = default_strategy(models[0], device)
    rows = [["1 trial (train_round)", times["one"], args.iterations / times["one"], 1.0, "", ""],
            [f"{args.trials} trials one after another", times["sequential"],
             args.trials * args.iterations / times["sequential"],
             times["sequential"] / times["one"], "", ""]]
    for s in strategies:
        ratio = times[s] / times["one"]
        judged = device.type == "cuda" and args.trials == 8
        rows.append([f"{args.trials} trials together, {s}{' (default here)' if s == default else ''}", times[s],
                     args.trials * args.iterations / times[s], ratio, f"≤ {TARGET:.1f} (GPU, 8 trials)",
                     harness.verdict(ratio, TARGET) if judged else "reported"])
    harness.table(f"6. trials in parallel ({harness.machine(device)})",
                  ["what", "seconds", "trial-steps/s", "× one trial's time", "target", "result"], rows,
                  [f"{args.model}, 80% pruned (zero), Adam, batch {args.batch_size}, {args.iterations} iterations, "
                   f"median of {args.repeats}"])


if __name__ == "__main__":
    main()
