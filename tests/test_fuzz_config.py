"""Property-based fuzzing of config values and `--set` strings (hypothesis).

Every generated config either validates and builds, or is refused with exit 2 and one line;
never a traceback, never a run dir left behind. No training: the CLI's run step is replaced
by a stub, and the memory a model may take is capped so a huge one is refused by the
estimate (engine.models.check_fits), not allocated.
"""

from __future__ import annotations

import copy
import io
import shutil
import tempfile
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import FAST_PRESET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.models
from engine.config import ConfigError, all_keys, apply_overrides, from_dict, to_toml
from engine.datasets import DATASETS
from engine.models import ModelError, build_model
from engine.training import generator
from lth_tui import cli, cli_start

# data.download would reach for the network, data.dir names a folder: both are machine keys
# whose effects other tests cover.
KEYS = [k for k in all_keys() if k not in ("data.download", "data.dir")]
JUNK_KEYS = ["train.nope", "a.b.c", "prune.rate.attention", "train", "model.hidden.0", " "]
MEMORY_CAP = 64 * 2 ** 20
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

numbers = st.one_of(st.integers(-2 ** 70, 2 ** 70), st.integers(-3, 3000),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1e-3, 0.0, 1.0, 1e308, -0.0]))
words = st.one_of(st.text(max_size=20),
                  st.sampled_from(["auto", "cpu", "cuda:3", "sgd", "adam", "multistep", "cosine", "global", "movement",
                                   "random_reinit", "freeze_init", "2ep", "10it", "0ep", "edge-popup", "supermask",
                                   "mlp",
                                   "conv2", "resnet20", "vgg16", "lenet-300-100", "mnist1d", "digits", "true",
                                   "false"]))
leaves = st.one_of(numbers, words, st.booleans())
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
    ["conv", "fc", "output", "x"]), inner, max_size=3), max_leaves=6)


def _set_text(value: object) -> str:
    """How a user would type a value after `=`: TOML-ish for numbers and lists, bare otherwise."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(value, "nan" if value != value else repr(value))
    if isinstance(value, (list, dict)):
        return str(value).replace("'", '"').replace("True", "true").replace("False", "false")
    return str(value)


set_strings = st.one_of(
    st.builds(lambda k, v: f"{k}={_set_text(v)}", st.sampled_from(KEYS + JUNK_KEYS), values),
    st.builds(lambda k, n: f"{k}={'[' * n}", st.sampled_from(KEYS), st.integers(1, 5000)),
    st.text(max_size=30),
)


def _set(raw: dict, key: str, value: object) -> None:
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _build(config) -> None:
    spec = DATASETS[config.data.name]
    build_model(config.model.name, input_shape=spec.input_shape, num_classes=spec.num_classes,
                hidden=config.model.hidden, init=config.model.init, generator=generator(0, "fuzz"))


@pytest.fixture
def capped_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.models, "device_memory", lambda device: MEMORY_CAP)


@SETTINGS
@given(changes=st.lists(st.tuples(st.sampled_from(KEYS + JUNK_KEYS), values), min_size=1, max_size=3))
def test_config_values_validate_and_build_or_raise_config_error(changes, capped_memory):
    raw = tomllib.loads(FAST_PRESET)
    for key, value in changes:
        _set(raw, key, copy.deepcopy(value))
    try:
        config = from_dict(raw, "fuzz.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 2000
        return
    # What validated must serialise and read back to the same config (config.toml of a run dir).
    assert from_dict(tomllib.loads(to_toml(config)), "round trip") == config
    try:
        _build(config)
    except ModelError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(sets=st.lists(set_strings, min_size=1, max_size=3))
def test_set_strings_through_the_cli_exit_0_or_2_with_one_line_and_no_run_dir(sets, capped_memory, monkeypatch):
    calls = []
    monkeypatch.setattr(cli_start, "execute_with_progress", lambda run_dir, *a, **k: calls.append(run_dir) or 0)
    root = Path(tempfile.mkdtemp(prefix="lth-fuzz-"))
    try:
        preset = root / "fuzz.toml"
        preset.write_text(FAST_PRESET, encoding="utf-8")
        runs = root / "runs"
        argv = ["run", str(preset), "--runs-dir", str(runs), "--quiet"]
        for item in sets:
            argv += ["--set", item]
        err, out = io.StringIO(), io.StringIO()
        with redirect_stderr(err), redirect_stdout(out):
            code = cli.main(argv)
        if code == 2:
            lines = err.getvalue().strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("lth-tui: error:"), err.getvalue()
            assert not runs.exists() and not calls
        else:
            assert code == 0 and len(calls) == 1 and [p.name for p in runs.iterdir()] == [calls[0].name]
    finally:
        shutil.rmtree(root)


@SETTINGS
@given(sets=st.lists(set_strings, min_size=1, max_size=4))
def test_apply_overrides_only_raises_config_error(sets):
    raw = tomllib.loads(FAST_PRESET)
    try:
        from_dict(apply_overrides(raw, sets), "fuzz --set")
    except ConfigError as exc:
        assert "\n" not in str(exc)
