"""How many CPU threads a run gives torch: `threads = "auto" | N` (a machine key).

torch takes one OpenMP thread per core by default. For the small models of lottery-ticket
work that is a trap: every op is a parallel region whose threads spin-wait for each other, so
the moment one core is busy with anything else (a neighbour's run, a compile, the app) a step
waits for the slowest thread and a run becomes 2-25x slower (benchmarks/README.md, table 10).

"auto" chooses, once when the run starts (and again on resume):
  want   the threads the model's work is worth: one per `FLOPS_PER_THREAD` of training work
         per step (6 x multiply-accumulates of one example x batch size), at least one. A
         model below 2 x `FLOPS_PER_THREAD` gets one thread on every machine, unmeasured:
         its step is no faster on two (benchmarks/README.md, table 10), and one thread gives
         the same bits everywhere (two change matmul reduction order, so a replay of θk by
         `lth-tui lmc` or a batched sweep would no longer match a run's stored weights);
  free   the cores nobody is using right now: the cores this process may run on, less the
         cores other processes kept busy (/proc/stat since the runner started, less this
         process's own CPU time; at least `SAMPLE_SECONDS`), less the threads that live
         runs of this run store on this host recorded in their status.json (a live run may be
         between rounds when sampled), at least one;
  cap    a parent's share (`LTH_TUI_THREADS_CAP`, set by a sweep running `--jobs N` at once).
and takes min(want, free, cap). The user's OMP_NUM_THREADS always wins: then nothing is set.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["CAP_ENV", "FLOPS_PER_THREAD", "SAMPLE_SECONDS", "apply_run_threads", "apply_threads", "busy_cores",
           "choose_threads", "flops_per_step", "live_run_threads", "usable_cores"]

CAP_ENV = "LTH_TUI_THREADS_CAP"
FLOPS_PER_THREAD = 2e8
"""Training work per step (FLOPs) that keeps one more thread busy enough to beat its sync cost."""
SAMPLE_SECONDS = 0.25


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a cgroup cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is no /proc."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def _sample() -> tuple[tuple[int, int] | None, float, float]:
    """(/proc/stat jiffies, this process's CPU seconds, wall seconds) at one instant."""
    own = os.times()
    return _cpu_times(), own.user + own.system, time.monotonic()


# Taken when the runner imports this module, so the busy share is measured over the seconds the
# runner spends loading data and building the model, instead of a sleep added to every run start.
_BASELINE = _sample()


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """How many cores other processes kept busy lately (0 where unknown).

    The window runs from this module's import to now, at least `seconds` (only the part the
    start-up did not cover is slept: entry points that start runs import this module before
    they load data, so it is usually none); this process's own CPU time in the window is not
    counted (it is loading the run)."""
    before = _BASELINE
    if before[0] is None:
        before = _sample()
    short = seconds - (time.monotonic() - before[2])
    if short > 0:  # only the part of the window the start-up did not already cover
        time.sleep(short)
    after = _sample()
    if before[0] is None or after[0] is None or after[0][1] <= before[0][1] or after[2] <= before[2]:
        return 0.0
    cores = os.cpu_count() or 1
    machine = (after[0][0] - before[0][0]) / (after[0][1] - before[0][1]) * cores
    own = (after[1] - before[1]) / (after[2] - before[2])
    return max(0.0, machine - own)


def live_run_threads(runs_dir: Path, exclude: Path | None = None) -> int:
    """Threads recorded by the runs of `runs_dir` running on this host now (their status.json)."""
    from engine.layout import RunLayout
    from engine.store import StoreError, pid_alive, read_status

    total = 0
    host = socket.gethostname()
    try:
        others = list(Path(runs_dir).iterdir())
    except OSError:
        return 0
    for other in others:
        if other == exclude or not RunLayout(other).status.is_file():
            continue
        try:
            status = read_status(other)
        except StoreError:
            continue
        if status["state"] != "running" or status.get("host") != host or not pid_alive(status.get("pid")):
            continue
        total += recorded_threads(status) or 1
    return total


def recorded_threads(status: dict[str, Any]) -> int | None:
    """The thread count a status.json recorded, None where it has none (an older runner) or
    a value that is not a positive integer (someone else's file)."""
    threads = status.get("threads")
    return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None


def choose_threads(setting: int | str, *, work: float, cores: int, busy: float, live_threads: int = 0,
                   cap: int | None = None) -> int:
    """The thread count for one run: `setting` when it is a number, else the "auto" rule above.

    `work` is training FLOPs per step; `busy` the cores measured busy; `live_threads` what
    other live runs of the store recorded.
    """
    if isinstance(setting, int):
        return setting
    want = max(1, int(work // FLOPS_PER_THREAD))
    free = max(1, int(cores - max(busy, float(live_threads)) + 0.5))
    chosen = min(want, free, cores)
    if cap is not None:
        chosen = min(chosen, max(1, cap))
    return chosen


def flops_per_step(model: torch.nn.Module, input_shape: tuple[int, ...], batch_size: int) -> float:
    """Training FLOPs of one step: 6 x the multiply-accumulates of one example's forward x batch.

    The multiply-accumulates are counted by hooks on the linear and conv layers during one
    forward of a zero example on the CPU (a copy of the model, so the run's own is untouched).
    """
    import copy

    import torch
    from torch import nn

    probe = copy.deepcopy(model).to("cpu").eval()
    macs = [0]

    def count(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            macs[0] += module.in_features * module.out_features
        elif isinstance(module, nn.modules.conv._ConvNd):
            per_output = module.in_channels // module.groups * int(torch.tensor(module.kernel_size).prod())
            macs[0] += per_output * output[0].numel()

    handles = [m.register_forward_hook(count) for m in probe.modules()
               if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    try:
        with torch.no_grad():
            probe(torch.zeros((1, *input_shape)))
    finally:
        for handle in handles:
            handle.remove()
    return 6.0 * macs[0] * batch_size


def apply_threads(setting: int | str, *, model: torch.nn.Module | None, input_shape: tuple[int, ...], batch_size: int,
                  device: torch.device, runs_dir: Path, run_dir: Path) -> int | None:
    """Sets torch's intra-op threads for this run and returns them; None when the user's
    OMP_NUM_THREADS decides (nothing is changed then)."""
    import torch

    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    cap_text = os.environ.get(CAP_ENV, "").strip()
    cap = int(cap_text) if cap_text.isdigit() else None
    if isinstance(setting, int):
        chosen = setting
    else:
        # On a GPU the CPU threads only feed it: the model's size does not call for more of them.
        on_cpu = torch.device(device).type == "cpu" and model is not None
        work = flops_per_step(model, input_shape, batch_size) if on_cpu else 0.0
        if work < 2 * FLOPS_PER_THREAD:  # worth one thread whatever the machine does: nothing to measure
            chosen = 1
        else:
            chosen = choose_threads(setting, work=work, cores=usable_cores(), busy=busy_cores(),
                                    live_threads=live_run_threads(runs_dir, exclude=run_dir), cap=cap)
    torch.set_num_threads(chosen)
    return chosen


def apply_run_threads(config: Any, data: Any, device: torch.device, run_dir: Path) -> int | None:
    """`apply_threads` for a run: its config's setting, a probe of its model for the work per step."""
    import torch

    from engine.models import build_model

    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return None
    probe = None
    if not isinstance(config.threads, int):
        probe = build_model(config.model.name, input_shape=data.input_shape, num_classes=data.num_classes,
                            hidden=config.model.hidden, init=config.model.init,
                            generator=torch.Generator().manual_seed(0))
    return apply_threads(config.threads, model=probe, input_shape=tuple(data.input_shape),
                         batch_size=config.train.batch_size, device=device, runs_dir=Path(run_dir).parent,
                         run_dir=Path(run_dir))
