"""Shared fixtures: a tiny preset that trains in seconds, a private HOME, one torch thread, and
the analysis runs (LMC, supermask) several test files read."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FAST_PRESET = """\
name = "fast-test"
description = "tiny digits run for the app tests"
seed = 0
trials = 1
device = "cpu"

[data]
name = "digits"

[model]
name = "mlp"
hidden = [32]

[train]
optimizer = "adam"
lr = 2e-3
batch_size = 60
iterations = 60
eval_every = 20

[prune]
rounds = 2
criterion = "large_final"
"""


def mlp_logits(state: dict, x) -> tuple:
    """The engine's MLP (flatten, ReLU fc_layers, linear fc) in float64, with a bound per logit
    on how far a float32 evaluation of the same weights can be from it.

    The bound is the standard one for sums, |fl(Σ) - Σ| <= n·u·Σ|terms| (u = 2^-24, n the
    fan-in + 1), carried layer by layer on the forward pass of absolute values, which bounds
    every |term|: depth · n · u · |forward|.  A prediction may differ between the two only where
    the top two float64 logits are closer than twice that.
    """
    import numpy as np

    layers, index = [], 0
    while f"fc_layers.{index}.weight" in state:
        layers.append((state[f"fc_layers.{index}.weight"], state[f"fc_layers.{index}.bias"]))
        index += 1
    layers.append((state["fc.weight"], state["fc.bias"]))
    h = np.asarray(x).reshape(len(x), -1).astype(np.float64)
    size = np.abs(h)
    for i, (w, b) in enumerate(layers):
        w, b = np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64)
        h = h @ w.T + b
        size = size @ np.abs(w).T + np.abs(b)
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    n = max(w.shape[1] for w, _ in layers) + 1
    return h, len(layers) * n * 2.0 ** -24 * size


def undecided(logits, bound):
    """Bool per example: float32 rounding could change its argmax (see mlp_logits)."""
    import numpy as np

    top = np.sort(logits, axis=1)
    return top[:, -1] - top[:, -2] <= 2 * bound.max(axis=1)


def merged(base: dict, **sections: object) -> dict:
    """A deep copy of a raw config with `sections` merged in: a dict updates that table, any
    other value replaces the key. Tests vary one table of a shared tiny config this way."""
    raw = copy.deepcopy(base)
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return raw


@pytest.fixture
def preset_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME and the working directory in tmp; the user preset dir holds fast-test.toml."""
    home = tmp_path / "home"
    presets = home / ".config" / "lth-tui" / "presets"
    presets.mkdir(parents=True)
    (presets / "fast-test.toml").write_text(FAST_PRESET, encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


async def wait_for(pilot, condition: Callable[[], object], timeout: float = 10.0, step: float = 0.1) -> None:
    """Polls `condition` between pilot pauses until it is truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                await pilot.pause()  # let the screen settle before the test looks further
                return
        except Exception:  # widgets that are not mounted yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {getattr(condition, '__name__', condition)}")
        await asyncio.sleep(step)  # the app keeps running meanwhile; cheaper than pilot.pause on a big screen


@pytest.fixture(scope="module")
def one_thread():
    """Tiny nets on a shared 2-core CPU: one torch thread avoids OpenMP oversubscription,
    which makes them 10x slower whenever another process is busy."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def analysis_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An IMP run of FAST_PRESET with 2 trials and analysis.lmc, and a 3-round supermask run.

    Trained once per session; a test that writes into a run dir must copy it first.
    """
    import tomllib

    import torch

    from engine.config import from_dict
    from engine.runner import execute
    from engine.store import create_run

    store = tmp_path_factory.mktemp("analysis-runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        raw = tomllib.loads(FAST_PRESET)
        raw["trials"] = 2
        raw["analysis"] = {"lmc": True}
        imp = create_run(from_dict(raw), store, preset="fast-lmc")
        assert execute(imp) == "done"
        raw = tomllib.loads(FAST_PRESET)
        raw["experiment"] = "supermask"
        raw["supermask"] = {"rounds": 3}
        sm = create_run(from_dict(raw), store, preset="fast-supermask")
        assert execute(sm) == "done"
    finally:
        torch.set_num_threads(threads)
    return {"imp": imp, "supermask": sm}


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster with 2 CPUs and 2 GPUs, started once for the whole test run; yields its address.

    GPUs are only labels to Ray, so which run gets which GPU is testable on a CPU box. This
    process stays connected (in-process CLI calls reuse the connection); subprocesses connect
    with `--address`. The object store is kept small and Ray's files live under a private
    /tmp dir (Ray's socket paths must stay short), both removed at the end; token auth and
    usage reporting are off so nothing is written to HOME or sent anywhere.
    """
    import os
    import shutil
    import tempfile

    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    import ray

    temp = tempfile.mkdtemp(prefix="lthray-", dir="/tmp")
    ray.init(num_cpus=2, num_gpus=2, object_store_memory=100 * 1024 * 1024, _temp_dir=temp, include_dashboard=False,
             log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
