"""Benchmark 7: each fast path of the training step, on against off, in one process.

Rows (engine.training.train_round each time, 80% pruned, data on the device unless said):
  hot path   this tree's train_round against the one at commit a9cdb65 (before this work:
             unfused optimizer, `w*mask + fill` after every step, lr written every step)
  bf16       [train] bf16 = true (bfloat16 autocast of the forward) against float32
  channels   [train] channels_last = true against the default layout (conv nets)
  compile    [train] compile = true against eager; compile time reported separately, and
             measured once per process (slow on a CPU: skip with --no-compile)
  host-fed   training split pinned in host memory, batches gathered, copied on a side stream
             and prefetched (engine/feeding.py), against the split on the GPU; GPU only
"ratio" is fast-path time / baseline time: below 1 is a win. A path that does not win on the
machine it matters for (the GPU) is to be switched off or removed.

    python benchmarks/bench_fast_paths.py [--device cuda] [--iterations 200] [--no-compile]
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time

import harness  # noqa: F401  (puts the repo root on sys.path)
import torch

from engine.config import from_dict, resolve_schedule
from engine.feeding import place_dataset
from engine.models import build_model
from engine.training import generator

BEFORE = "a9cdb65"


def old_training():
    """engine/training.py as it was at commit BEFORE, imported under another name (None without git)."""
    try:
        source = subprocess.run(["git", "-C", str(harness.ROOT), "show", f"{BEFORE}:engine/training.py"],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    spec = importlib.util.spec_from_loader("training_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["training_before"] = module  # dataclasses look their module up while the class is built
    exec(compile(source, f"{BEFORE}:engine/training.py", "exec"), module.__dict__)
    return module


class Case:
    def __init__(self, args, device, model_name: str, data, **train):
        self.args, self.device, self.data = args, device, data
        self.config = from_dict({"model": {"name": model_name}, "train": {
            "batch_size": args.batch_size, "iterations": args.iterations, "eval_every": args.iterations, **train}})
        self.schedule = resolve_schedule(self.config, len(data.train_x))
        self.model = build_model(model_name, input_shape=data.input_shape, num_classes=10,
                                 generator=generator(0, "init")).to(device)
        self.theta0 = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.masks = harness.random_masks(self.model, keep=0.2)

    def runner(self, module=None, data=None, frozen=False, **train):
        module = module or sys.modules["engine.training"]
        config = self.config.train
        if train:
            import dataclasses

            config = dataclasses.replace(config, **train)
        job = module.TrainJob(data=data or self.data, config=config, schedule=self.schedule, masks=self.masks,
                              frozen={n: self.theta0[n] for n in self.masks} if frozen else None, seed=1)

        def go():
            self.model.load_state_dict(self.theta0)
            module.train_round(self.model, job)
            self.model.to(memory_format=torch.contiguous_format)  # undo channels_last for the next contender
        return go


def row(name: str, what: str, times: dict[str, float], fast: str, base: str, iterations: int) -> list:
    ratio = times[fast] / times[base]
    return [name, what, iterations / times[base], iterations / times[fast], ratio, "win" if ratio < 1 else "no win"]


def main(argv=None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.set_defaults(repeats=3)
    p.add_argument("--iterations", type=int, default=150)
    p.add_argument("--conv-iterations", type=int, default=3, help="iterations for conv2 rows (slow on a CPU)")
    p.add_argument("--conv-batch-size", type=int, default=32)
    p.add_argument("--conv-repeats", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--train-size", type=int, default=6000)
    p.add_argument("--no-compile", action="store_true")
    args = p.parse_args(argv)
    device = harness.setup(args)
    mnist = harness.synthetic_dataset("mnist", args.train_size, 64, 64, device)
    cifar = harness.synthetic_dataset("cifar10", args.train_size, 64, 64, device)
    rows, notes = [], []

    lenet = Case(args, device, "lenet-300-100", mnist)
    old = old_training()
    if old is not None:
        for frozen in (False, True):
            t = harness.alternate({"before": lenet.runner(old, frozen=frozen), "now": lenet.runner(frozen=frozen)},
                                  args.repeats, device)
            rows.append(row("hot path", f"lenet-300-100, {'freeze_init' if frozen else 'zero'}: now vs {BEFORE}", t,
                            "now", "before", args.iterations))
    else:
        notes.append(f"hot path row skipped: git show {BEFORE}:engine/training.py failed")

    t = harness.alternate({"fp32": lenet.runner(), "bf16": lenet.runner(bf16=True)}, args.repeats, device)
    rows.append(row("bf16", "lenet-300-100", t, "bf16", "fp32", args.iterations))
    conv_args = type(args)(**{**vars(args), "iterations": args.conv_iterations, "batch_size": args.conv_batch_size})
    conv = Case(conv_args, device, "conv2", cifar)
    t = harness.alternate({"fp32": conv.runner(), "bf16": conv.runner(bf16=True), "cl": conv.runner(channels_last=True),
                           "cl+bf16": conv.runner(channels_last=True, bf16=True)}, args.conv_repeats, device)
    rows.append(row("bf16", "conv2 (CIFAR shape)", t, "bf16", "fp32", args.conv_iterations))
    rows.append(row("channels", "conv2 (CIFAR shape)", t, "cl", "fp32", args.conv_iterations))
    rows.append(row("channels+bf16", "conv2 (CIFAR shape)", t, "cl+bf16", "fp32", args.conv_iterations))

    if device.type == "cuda":
        host = place_dataset(mnist, device, budget_bytes=0)
        t = harness.alternate({"device": lenet.runner(), "host": lenet.runner(data=host)}, args.repeats, device)
        rows.append(row("host-fed", "lenet-300-100, MNIST shape", t, "host", "device", args.iterations))
    else:
        notes.append("host-fed: GPU only (on a CPU the data is always where the model is)")

    if not args.no_compile:
        compiled = lenet.runner(compile=True)
        start = time.perf_counter()
        compiled()  # first call: compiles
        harness.sync(device)
        notes.append(f"compile: first round took {time.perf_counter() - start:.1f} s including compilation")
        t = harness.alternate({"eager": lenet.runner(), "compiled": compiled}, args.repeats, device, warmup=0)
        rows.append(row("compile", "lenet-300-100", t, "compiled", "eager", args.iterations))

    harness.table(f"7. fast paths, on vs off ({harness.machine(device)})",
                  ["path", "case", "off steps/s", "on steps/s", "on/off time", "verdict"], rows,
                  notes + [f"80% pruned, Adam; lenet rows: batch {args.batch_size}, {args.iterations} iterations, "
                           f"median of {args.repeats}; conv2 rows: batch {args.conv_batch_size}, "
                           f"{args.conv_iterations} iterations, median of {args.conv_repeats}"])


if __name__ == "__main__":
    main()
