"""Experiment configuration: typed dataclasses that are also the preset format and the CLI.

A preset TOML file, `--set key=value` and the app's panels all address the same dotted names
(`train.lr`, `prune.rate.fc`). Everything is validated here, before a run directory exists,
so bad input never leaves half a run behind. Every error names the source, the key, the bad
value and what is allowed. How one value is checked against its type, and ConfigError itself,
live in engine/config_values.py.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config_values import LAYER_KINDS, AutoBool, AutoFloat, AutoInt, ConfigError, clip, coerce_value, parse_value
from engine.steps import Step, as_config_value

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "multistep", "cosine")
STRATEGIES = ("iterative", "oneshot")
# train.lr_scaling: "linear" trains at lr * batch_size / lr_reference_batch (Goyal et al. 2017's rule).
LR_SCALINGS = ("none", "linear")
SUPERMASK_WEIGHTS = ("init", "signed_constant")
SCORE_INITS = ("kaiming-uniform", "magnitude")
# Keys that describe the machine, not the experiment: they do not change the config hash.
MACHINE_KEYS = ("device", "threads", "data.dir", "data.download", "parallel_trials", "train.compile",
                "train.channels_last", "train.cuda_graphs")
# Keys added after runs were stored: left out of the config hash while they hold these values
# (their defaults), so a config written before the key existed keeps its hash.
HASH_NEUTRAL_DEFAULTS: dict[str, Any] = {
    "prune.count": "exact", "model.bn_init": "ones", "model.bias_init": "zeros", "model.residual": False,
    "train.last_batch": "drop", "supermask.optimizer": "auto", "supermask.lr": "auto", "supermask.momentum": "auto",
    "supermask.weight_decay": "auto", "supermask.schedule": "auto",
    "train.lr_scaling": "none", "train.lr_reference_batch": 128, "analysis.successive": False}
SEED_MAX = 2 ** 63 - 1
# Upper bounds that keep a config from asking for more than any machine has (the model's own
# size is checked against the device's memory by engine.models.check_fits).
INT_LIMITS = {"trials": 10_000, "data.val_size": 10 ** 8, "train.batch_size": 2 ** 24, "prune.rounds": 1000,
              "supermask.rounds": 10_000, "analysis.lmc_points": 1001}
WIDTH_MAX = 2 ** 31 - 1
LAST_BATCH = ("drop", "keep")


@dataclass
class DataConfig:
    name: str = "digits"
    val_size: int = 300
    augment: bool = False
    dir: str = ""
    download: bool = False


@dataclass
class ModelConfig:
    name: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [300, 100])
    init: str = "glorot-normal"
    # BatchNorm weights: ones (PyTorch) | uniform (OpenLTH's U[0,1)); BN biases start at 0 either way.
    bn_init: str = "ones"
    # Conv/linear biases: zeros | torch-default (PyTorch's U(±1/√fan_in), which OpenLTH keeps).
    bias_init: str = "zeros"
    # mlp only: hidden layers after the first add their input (h + relu(W h + b)) where widths match.
    residual: bool = False


@dataclass
class TrainConfig:
    optimizer: str = "adam"
    lr: float = 1.2e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 60
    iterations: Step = Step(2000)
    schedule: str = "constant"
    milestones: list[Step] = field(default_factory=list)
    gamma: float = 0.1
    warmup_iterations: Step = Step(0)
    eval_every: Step = Step(100)
    # An epoch's last, short batch: drop (floor(N / batch) steps per epoch) | keep (ceil, as OpenLTH).
    last_batch: str = "drop"
    # lr_scaling = "linear": the learning rate trained with is lr * batch_size / lr_reference_batch,
    # so a batch-size sweep keeps lr per example fixed (warm-up and schedule multiply it as usual).
    lr_scaling: str = "none"
    lr_reference_batch: int = 128
    # Fast paths (engine/training.py; measured by benchmarks/bench_fast_paths.py): torch.compile
    # of the model, channels-last memory format for conv nets, bfloat16 autocast of the forward.
    compile: bool = False
    channels_last: bool = False
    bf16: bool = False
    # The whole masked training step as one CUDA graph, replayed every step (engine/cuda_graphs.py).
    cuda_graphs: bool = False

    def lr_scale(self) -> float:
        """Factor between `lr` and the learning rate trained with: batch_size / lr_reference_batch
        under linear scaling, else 1."""
        return self.batch_size / self.lr_reference_batch if self.lr_scaling == "linear" else 1.0


@dataclass
class PruneConfig:
    rounds: int = 5
    strategy: str = "iterative"
    scope: str = "layerwise"
    count: str = "exact"             # exact: ceil(rate × survivors) | openlth: sparse_global's threshold
    rate: dict[str, float] = field(default_factory=lambda: {"conv": 0.1, "fc": 0.2, "output": 0.1})
    criterion: str = "large_final"
    mask1: str = "rewind"
    mask0: str = "zero"
    rewind_iteration: Step = Step(0)


@dataclass
class SupermaskConfig:
    """Mask training over frozen weights (experiment = "supermask" or "edge-popup").

    The optimizer keys here train the mask logits / scores (the only trained tensors); "auto"
    takes the experiment's own recipe (engine/recipes.py), so [train]'s optimizer keys stay the
    IMP recipe. Batch size, warm-up and milestones are [train]'s; train.iterations is the whole
    training, cut into `rounds` equal segments whose end-of-segment masks are the run's round masks.
    """

    weights: str = "init"              # init: θ0 as drawn | signed_constant: σ_layer · sign(θ0)
    rescale: bool = True               # multiply each layer by size / kept (Zhou's dynamic weight rescaling)
    logit_init: float = 0.0            # supermask: initial mask logit (0 → keep probability 0.5)
    k: float = 0.5                     # edge-popup: fraction of each layer's weights kept (top |score|)
    score_init: str = "kaiming-uniform"  # edge-popup: kaiming-uniform (Ramanujan) | magnitude (|θ0|)
    rounds: int = 5                    # segments of training recorded as rounds (mask, accuracy)
    optimizer: str = "auto"            # auto | sgd | adam
    lr: AutoFloat = "auto"
    momentum: AutoFloat = "auto"
    weight_decay: AutoFloat = "auto"   # on the scores
    schedule: str = "auto"             # auto | constant | multistep | cosine


@dataclass
class AnalysisConfig:
    """Extra measurements an IMP run can make per round."""

    lmc: bool = False                  # linear mode connectivity of two copies of each round's training
    lmc_points: int = 21               # interpolation points, both ends included
    lmc_stable_threshold: float = 0.02  # error barrier below this counts as stable (Frankle et al.: 2%)
    # barrier and distances between round r-1's and round r's solutions (engine/successive.py)
    successive: bool = False


@dataclass
class ExperimentConfig:
    name: str = "custom"
    description: str = ""
    seed: int = 0
    trials: int = 1
    device: str = "auto"
    threads: AutoInt = "auto"  # CPU threads torch may use: auto | N (the user's OMP_NUM_THREADS wins)
    parallel_trials: AutoBool = "auto"  # train the trials as one batched model: auto | true | false
    experiment: str = "imp"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    supermask: SupermaskConfig = field(default_factory=SupermaskConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML/JSON-ready values; steps keep their unit ("2ep")."""
        return _to_plain(self)

    def config_hash(self) -> str:
        """Hash of everything that changes the science (machine keys left out)."""
        plain = self.to_dict()
        for key in MACHINE_KEYS:
            section, _, leaf = key.rpartition(".")
            (plain[section] if section else plain).pop(leaf, None)
        for key, default in HASH_NEUTRAL_DEFAULTS.items():
            section, _, leaf = key.rpartition(".")
            node = plain[section] if section else plain
            if node.get(leaf) == default:
                node.pop(leaf)
        blob = json.dumps(plain, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> Any:
        """The value at a dotted key, e.g. "prune.rate.fc"."""
        node: Any = self
        for part in key.split("."):
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        return node


def total_rounds(config: ExperimentConfig) -> int:
    """Rounds trained per trial, as the run's experiment kind counts them (engine/experiments.py)."""
    from engine.experiments import total_rounds as rounds_of

    return rounds_of(config)


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "prune": PruneConfig,
                             "supermask": SupermaskConfig, "analysis": AnalysisConfig}


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Step):
        return as_config_value(obj)
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def choices() -> dict[str, tuple[str, ...]]:
    """Allowed names per key, from the registries' torch-free index (engine/catalog.py)."""
    from engine.catalog import (
        BIAS_INITS,
        BN_INITS,
        COUNTS,
        CRITERIA,
        DATASETS,
        INIT_SCHEMES,
        MASK0_ACTIONS,
        MASK1_ACTIONS,
        MODELS,
        SCOPES,
    )
    from engine.experiments import EXPERIMENTS

    return {
        "data.name": tuple(DATASETS),
        "model.name": tuple(MODELS),
        "model.init": tuple(INIT_SCHEMES),
        "model.bn_init": BN_INITS,
        "model.bias_init": BIAS_INITS,
        "train.last_batch": LAST_BATCH,
        "supermask.optimizer": ("auto", *OPTIMIZERS),
        "supermask.schedule": ("auto", *SCHEDULES),
        "train.optimizer": OPTIMIZERS,
        "train.schedule": SCHEDULES,
        "train.lr_scaling": LR_SCALINGS,
        "prune.strategy": STRATEGIES,
        "prune.scope": tuple(SCOPES),
        "prune.count": tuple(COUNTS),
        "prune.criterion": tuple(CRITERIA),
        "prune.mask1": tuple(MASK1_ACTIONS),
        "prune.mask0": tuple(MASK0_ACTIONS),
        "experiment": tuple(EXPERIMENTS),
        "supermask.weights": SUPERMASK_WEIGHTS,
        "supermask.score_init": SCORE_INITS,
    }


def choice_help(key: str, name: str) -> str:
    """One line on what a criterion or mask-1 / mask-0 action does: its docstring's first line."""
    from engine.catalog import CHOICE_HELP

    return CHOICE_HELP.get(key, {}).get(name, "")


def all_keys() -> list[str]:
    """Every dotted key a preset or `--set` may name."""
    keys = [f.name for f in dataclasses.fields(ExperimentConfig) if f.name not in SECTIONS]
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            keys.append(f"{section}.{f.name}")
            if f.name == "rate":
                keys.extend(f"prune.rate.{kind}" for kind in LAYER_KINDS)
    return keys


def _build(source: str, cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(source, dotted, value, f"unknown key; allowed here: {', '.join(names)}")
        tp = hints[key]
        if tp in SECTIONS.values():
            if not isinstance(value, dict):
                raise ConfigError(source, dotted, value, f"[{key}] must be a table")
            kwargs[key] = _build(source, tp, value, f"{dotted}.")
        else:
            kwargs[key] = coerce_value(source, dotted, value, tp)
    obj = cls(**kwargs)
    if cls is PruneConfig and "rate" in raw:
        obj.rate = {**PruneConfig().rate, **obj.rate}
    return obj


def from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Builds and validates a config from plain values (a parsed TOML file)."""
    config = _build(source, ExperimentConfig, raw)
    validate(config, source)
    return config


def apply_overrides(raw: dict[str, Any], overrides: list[str], source: str = "--set") -> dict[str, Any]:
    """Applies `key=value` strings to a raw config dict (a copy is returned)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(source, None, item, f"--set takes key=value, got {item!r}; keys: {', '.join(all_keys())}")
        if key not in all_keys():
            raise ConfigError(source, key, text, f"unknown key; allowed: {', '.join(all_keys())}")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(source, key, text, f"{part} is not a table")
        node[leaf] = parse_value(text.strip())
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Reads a TOML file, turning a missing file or a syntax error into a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), None, None, f"file not found: {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(str(path), None, None, f"TOML syntax error: {clip(exc)}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, None, f"not a UTF-8 text file: {exc}") from None
    except RecursionError:
        raise ConfigError(str(path), None, None, "TOML nested too deeply to be a config") from None
    except OSError as exc:
        raise ConfigError(str(path), None, None, f"cannot be read: {exc.strerror}") from None


def load_config(path: Path | str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Loads a preset or config file, applies `--set` overrides and validates everything."""
    raw = read_toml(Path(path))
    source = str(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
        source = f"{path} with --set"
    return from_dict(raw, source)


def _check_choice(source: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(source, key, value, f"allowed: {', '.join(allowed)}")


def validate(config: ExperimentConfig, source: str = "config") -> None:
    """Range and name checks that the types alone cannot express."""
    for key, allowed in choices().items():
        _check_choice(source, key, config.get(key), allowed)
    if config.device != "auto" and config.device != "cpu" and not _is_cuda_name(config.device):
        raise ConfigError(source, "device", config.device, "allowed: auto, cpu, cuda, cuda:N")
    positive = {"trials": config.trials, "train.batch_size": config.train.batch_size,
                "train.lr_reference_batch": config.train.lr_reference_batch}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(source, key, value, "must be at least 1")
    if not 0 <= config.seed <= SEED_MAX:
        raise ConfigError(source, "seed", config.seed, "must be between 0 and 2^63-1")
    for key, limit in INT_LIMITS.items():
        if config.get(key) > limit:
            raise ConfigError(source, key, config.get(key), f"at most {limit}")
    if config.data.val_size < 0:
        raise ConfigError(source, "data.val_size", config.data.val_size, "0 (no hold-out, no early stopping) or more")
    if config.prune.rounds < 0:
        raise ConfigError(source, "prune.rounds", config.prune.rounds, "must be 0 or more")
    if config.prune.strategy == "oneshot" and config.prune.rounds < 1:
        raise ConfigError(source, "prune.rounds", config.prune.rounds,
                          "oneshot needs at least 1 (the iterative steps to prune to)")
    hidden = config.model.hidden
    if not hidden or any(not 1 <= h <= WIDTH_MAX for h in hidden) or len(hidden) > 1000:
        raise ConfigError(source, "model.hidden", config.model.hidden[:10],
                          "a non-empty list of at most 1000 widths between 1 and 2^31-1")
    if config.model.residual and (config.model.name != "mlp"
                                  or not any(a == b for a, b in zip(config.model.hidden, config.model.hidden[1:]))):
        raise ConfigError(source, "model.residual", True,
                          "residual hidden layers need model.name = \"mlp\" and two consecutive equal hidden widths")
    for key in ("train.lr",):
        if not config.get(key) > 0:
            raise ConfigError(source, key, config.get(key), "must be greater than 0")
    for key in ("train.weight_decay", "train.momentum"):
        if config.get(key) < 0:
            raise ConfigError(source, key, config.get(key), "must be 0 or more")
    if config.train.momentum >= 1:
        raise ConfigError(source, "train.momentum", config.train.momentum, "must be below 1")
    if not 0 < config.train.gamma <= 1:
        raise ConfigError(source, "train.gamma", config.train.gamma, "must be in (0, 1]")
    if config.train.iterations.count < 1:
        raise ConfigError(source, "train.iterations", as_config_value(config.train.iterations),
                          "must be at least 1 iteration")
    if config.train.eval_every.count < 1:
        raise ConfigError(source, "train.eval_every", as_config_value(config.train.eval_every),
                          "must be at least 1 iteration")
    for kind, rate in config.prune.rate.items():
        if not 0 <= rate < 1:
            raise ConfigError(source, f"prune.rate.{kind}", rate,
                              "a fraction of survivors removed per round: 0 <= rate < 1 (0 leaves that kind unpruned)")
    if config.prune.rounds > 0 and all(rate == 0 for rate in config.prune.rate.values()):
        raise ConfigError(source, "prune.rate", config.prune.rate, "at least one layer kind needs a rate above 0")
    _validate_count(config, source)
    _validate_mask_training(config, source)
    _validate_speed(config, source)
    _validate_cuda_graphs(config, source)


def _validate_count(config: ExperimentConfig, source: str) -> None:
    """prune.count = openlth only where OpenLTH's sparse_global rule means something."""
    from engine.catalog import openlth_problem

    if config.prune.count == "openlth":
        problem = openlth_problem(config.prune.criterion, config.prune.scope, config.prune.rate)
        if problem:
            raise ConfigError(source, "prune.count", "openlth", problem)


def _validate_speed(config: ExperimentConfig, source: str) -> None:
    """parallel_trials and the [train] fast-path switches, for every experiment.

    IMP (LMC's copies included) takes all of them; trials trained together take bf16;
    mask training takes bf16 (its forward is a functional call over w · m, which torch.compile
    and the model's channels-last conversion do not reach).
    """
    from engine.catalog import MODELS

    if config.train.channels_last and not MODELS[config.model.name].needs_image:
        raise ConfigError(source, "train.channels_last", True,
                          "channels-last is a memory format for conv nets; "
                          f"model {config.model.name!r} has no conv layers")
    if config.experiment != "imp":
        for key in ("train.compile", "train.channels_last"):
            if config.get(key):
                raise ConfigError(source, key, True,
                                  f"mask training ({config.experiment}) does not take this fast path; "
                                  "set it to false (train.bf16 works)")
    if config.parallel_trials is True:
        if config.experiment != "imp":
            raise ConfigError(source, "parallel_trials", True,
                              "batched trials train IMP rounds; "
                              f"experiment is {config.experiment!r} (use auto or false)")
        for key in ("train.compile", "train.channels_last"):
            if config.get(key):
                raise ConfigError(source, "parallel_trials", True,
                                  f"batched trials do not combine with {key} = true yet; set one of them to false")


def _validate_cuda_graphs(config: ExperimentConfig, source: str) -> None:
    """train.cuda_graphs: what a captured IMP step cannot be combined with (a CPU found at run
    start is refused by engine/cuda_graphs.py)."""
    if not config.train.cuda_graphs:
        return
    why = None
    if config.device == "cpu":
        why = "CUDA graphs need a CUDA device and device is \"cpu\"; use device = auto or cuda"
    elif config.experiment != "imp":
        why = (f"CUDA graphs capture the IMP training step; experiment {config.experiment!r} "
               "trains masks in its own loop")
    elif config.train.compile:
        why = "torch.compile does not run inside a captured graph; set train.compile or train.cuda_graphs to false"
    elif config.parallel_trials is True:
        why = "batched trials are not captured; set parallel_trials = false or auto (auto trains the trials one by one)"
    if why:
        raise ConfigError(source, "train.cuda_graphs", True, why)


def _validate_mask_training(config: ExperimentConfig, source: str) -> None:
    """The [supermask] and [analysis] sections."""
    from engine.experiments import experiment_of

    sm, analysis = config.supermask, config.analysis
    if not 0 < sm.k <= 1:
        raise ConfigError(source, "supermask.k", sm.k, "the fraction of each layer kept: 0 < k <= 1")
    if sm.rounds < 1:
        raise ConfigError(source, "supermask.rounds", sm.rounds, "must be at least 1")
    iterations = config.train.iterations
    if experiment_of(config).mask_training and iterations.unit == "it" and sm.rounds > iterations.count:
        raise ConfigError(source, "supermask.rounds", sm.rounds,
                          f"at most train.iterations ({config.train.iterations.count}): every round needs an iteration")
    for key in ("lr", "momentum", "weight_decay"):
        value = getattr(sm, key)
        if value != "auto" and (value < 0 or (key == "lr" and value == 0) or (key == "momentum" and value >= 1)):
            raise ConfigError(source, f"supermask.{key}", value,
                              {"lr": "auto or a number above 0",
                               "momentum": "auto or 0 <= momentum < 1"}.get(key, "auto or 0 or more"))
    if not -30 <= sm.logit_init <= 30:
        raise ConfigError(source, "supermask.logit_init", sm.logit_init, "a logit between -30 and 30")
    if analysis.lmc_points < 3:
        raise ConfigError(source, "analysis.lmc_points", analysis.lmc_points, "at least 3 (both ends and a midpoint)")
    if not 0 < analysis.lmc_stable_threshold < 1:
        raise ConfigError(source, "analysis.lmc_stable_threshold", analysis.lmc_stable_threshold,
                          "an error rise between 0 and 1 (0.02 = 2 percentage points)")
    for key in ("lmc", "successive"):
        if getattr(analysis, key) and key not in experiment_of(config).analyses:
            raise ConfigError(source, f"analysis.{key}", True,
                              "linear mode connectivity is measured on IMP rounds; "
                              f"experiment is {config.experiment!r}")


def _is_cuda_name(device: str) -> bool:
    if device == "cuda":
        return True
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()


@dataclass(frozen=True)
class Schedule:
    """The config's lengths resolved to iterations for one dataset."""

    iterations: int
    eval_every: int
    warmup: int
    milestones: tuple[int, ...]
    rewind_iteration: int
    iterations_per_epoch: int


def resolve_schedule(config: ExperimentConfig, train_size: int, source: str = "config") -> Schedule:
    """Turns epoch lengths into iterations once the training-set size is known."""
    batch = config.train.batch_size
    per_epoch = max(1, -(-train_size // batch) if config.train.last_batch == "keep" else train_size // batch)
    t = config.train
    schedule = Schedule(
        iterations=t.iterations.iterations(per_epoch),
        eval_every=t.eval_every.iterations(per_epoch),
        warmup=t.warmup_iterations.iterations(per_epoch),
        milestones=tuple(m.iterations(per_epoch) for m in t.milestones),
        rewind_iteration=config.prune.rewind_iteration.iterations(per_epoch),
        iterations_per_epoch=per_epoch,
    )
    if schedule.rewind_iteration >= schedule.iterations:
        raise ConfigError(source, "prune.rewind_iteration", as_config_value(config.prune.rewind_iteration),
                          f"must be below train.iterations ({schedule.iterations} iterations)")
    for given, at in zip(t.milestones, schedule.milestones):
        if at > schedule.iterations:
            raise ConfigError(source, "train.milestones", as_config_value(given),
                              f"a milestone beyond the training length ({schedule.iterations} iterations) "
                              "never takes effect")
    if schedule.warmup > schedule.iterations:
        raise ConfigError(source, "train.warmup_iterations", as_config_value(t.warmup_iterations),
                          f"must not exceed train.iterations ({schedule.iterations} iterations)")
    return schedule


def to_toml(config: ExperimentConfig) -> str:
    """The fully resolved config as TOML (config.toml in a run dir, or a saved preset)."""
    import tomli_w

    return tomli_w.dumps(config.to_dict())
