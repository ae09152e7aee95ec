"""The winning ticket as a standalone model file: one safetensors file any PyTorch user can load.

A ticket file holds every `state_dict` tensor of the model (parameters and buffers) with the
pruned entries of each prunable weight exactly 0, and beside each prunable weight its bool mask
under `<weight>_mask` (torch.nn.utils.prune's name, so `prune.custom_from_mask` takes it as is).
The safetensors metadata carries what is needed to rebuild the module without the run dir:

    format   "lth-tui-ticket"          version  "1"
    model    JSON {"name", "hidden", "init", "input_shape", "num_classes"}  (engine.models.build_model's arguments)
    masks    JSON [mask tensor names]
    source   JSON {"run_id", "trial", "round", "weights": "final"|"init", "weights_remaining", ...}

A ticket file may come from anyone, so `read_ticket` checks it against a skeleton of the named
model built on the meta device before any real tensor is allocated: the same tensor names,
shapes and dtypes, one bool mask per prunable weight, zeros where the masks are 0. Nothing is
unpickled; safetensors cannot run code.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save
from torch import nn

from engine.experiments import experiment_of
from engine.models import INIT_SCHEMES, MODELS, ModelError, build_model, layer_kinds

FORMAT, VERSION = "lth-tui-ticket", "1"
MASK_SUFFIX = "_mask"
WEIGHTS = ("final", "init")
_MAX_INPUT_ELEMENTS = 1 << 24  # 16M inputs per example: far above any model here, bounds a hostile header


class TicketError(ValueError):
    """A ticket that cannot be written or read; the message names the file and what is wrong."""


@dataclass
class Ticket:
    """A ticket file's contents, checked: the state dict, the masks, and the metadata."""

    state: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    model: dict[str, Any]
    source: dict[str, Any]


# -- writing --------------------------------------------------------------------------------


def _round_dirs(run_dir: Path, trial: int) -> dict[int, Path]:
    from engine.layout import RunLayout

    return dict(RunLayout(run_dir).rounds_on_disk(trial))


def write_ticket(run_dir: Path, output: Path | None = None, *, trial: int = 0, round_: int | None = None,
                 weights: str = "final") -> Path:
    """Writes round `round_` (default: the last trained) of `trial` as a ticket file; returns its path
    (default RUN_DIR/ticket-trial<T>-round<R>-<weights>.safetensors).

    `weights="final"`: the weights at the end of the round's training; `"init"`: the weights
    the round started from (the rewind point after the mask-1 / mask-0 actions). Either way
    pruned entries are set to exactly 0, so a run that froze its pruned weights at θ0 yields
    the pure subnetwork, not the frozen-weight network it trained.
    """
    from engine.datasets import DATASETS
    from engine.layout import FINAL, MASK, START
    from engine.store import StoreError, load_tensors, read_config, read_result

    run_dir = Path(run_dir)
    if weights not in WEIGHTS:
        raise TicketError(f"--weights {weights!r} is not allowed; choose one of: {', '.join(WEIGHTS)}")
    config = read_config(run_dir)
    experiment = config.experiment
    if weights == "init" and experiment_of(config).mask_training:
        raise TicketError(f"a {experiment} run trains masks over frozen weights and has no rewind point; "
                          "export --weights final (its effective weights w·m·scale)")
    if trial < 0 or trial >= config.trials:
        raise TicketError(f"--trial {trial} is out of range: the run has trials 0..{config.trials - 1}")
    wanted = FINAL if weights == "final" else START
    rounds = {r: d for r, d in _round_dirs(run_dir, trial).items()
              if (d / wanted).is_file() and (d / MASK).is_file()}
    if not rounds:
        raise TicketError(f"trial {trial} has no round with {wanted} and mask.safetensors yet")
    if round_ is None:
        round_ = max(rounds)
    elif round_ not in rounds:
        raise TicketError(f"--round {round_} has no {wanted}; rounds available: {', '.join(map(str, sorted(rounds)))}")
    rdir = rounds[round_]
    spec = DATASETS[config.data.name]
    model = {"name": config.model.name, "hidden": list(config.model.hidden), "init": config.model.init,
             "input_shape": list(spec.input_shape), "num_classes": spec.num_classes}
    skeleton = _skeleton(model, str(run_dir))
    try:
        state = load_tensors(rdir / wanted)
        stored_masks = load_tensors(rdir / MASK)
    except StoreError as exc:
        raise TicketError(f"{rdir}: {exc}") from None
    _check_state(state, skeleton, f"{rdir / wanted}")
    kinds = layer_kinds(skeleton)
    masks: dict[str, torch.Tensor] = {}
    for name in kinds:
        mask = stored_masks.get(name)
        if mask is None or tuple(mask.shape) != tuple(state[name].shape):
            raise TicketError(f"{rdir / MASK}: no mask of shape {tuple(state[name].shape)} for {name}")
        masks[name] = mask.bool()
    pruned = dict(state)
    for name, mask in masks.items():
        pruned[name] = torch.where(mask, state[name], torch.zeros((), dtype=state[name].dtype))
    try:
        result = read_result(rdir)
    except StoreError:
        result = {}
    source = {"run_id": run_dir.name, "trial": trial, "round": round_, "weights": weights, "experiment": experiment,
              "criterion": config.prune.criterion, "mask1": config.prune.mask1, "mask0": config.prune.mask0,
              "dataset": config.data.name}
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    source["weights_remaining"] = kept / total if total else 1.0
    for key in ("test_accuracy_at_early_stop", "test_accuracy_final", "early_stop_iteration"):
        if isinstance(result, dict) and isinstance(result.get(key), (int, float)):
            source[key] = result[key]
    tensors = {**pruned, **{f"{name}{MASK_SUFFIX}": m for name, m in masks.items()}}
    metadata = {"format": FORMAT, "version": VERSION, "model": json.dumps(model), "masks": json.dumps(sorted(masks)),
                "source": json.dumps(source)}
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    default = run_dir / f"ticket-trial{trial}-round{round_}-{weights}.safetensors"
    output = Path(output) if output is not None else default
    _write_new_file(output, data)
    return output


def _write_new_file(path: Path, data: bytes) -> None:
    """A fresh temp file beside `path` (O_EXCL | O_NOFOLLOW: never through a planted link), then rename.

    As lth-tui's other exports do, a target that is a symlink or a folder is refused.
    """
    from engine.store import replace_atomically

    if os.path.islink(path):
        raise TicketError(f"{path} is a symlink; exports never write through links (remove it, or give -o FILE)")
    if path.is_dir():
        raise TicketError(f"{path} is a directory; give a file name such as ticket.safetensors")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, data)
    except OSError as exc:
        raise TicketError(f"cannot write {path}: {exc.strerror}") from None


# -- reading --------------------------------------------------------------------------------


def _positive_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def _skeleton(model: Any, where: str) -> nn.Module:
    """The named model built on the meta device: names, shapes and dtypes, no memory."""
    if not isinstance(model, dict):
        raise TicketError(f"{where}: metadata 'model' must be an object")
    name, hidden, init = model.get("name"), model.get("hidden"), model.get("init")
    shape, classes = model.get("input_shape"), model.get("num_classes")
    if name not in MODELS:
        raise TicketError(f"{where}: unknown model {name!r}; allowed: {', '.join(MODELS)}")
    if init not in INIT_SCHEMES:
        raise TicketError(f"{where}: unknown init {init!r}; allowed: {', '.join(INIT_SCHEMES)}")
    if not _positive_int_list(hidden) or not _positive_int_list(shape) or not shape:
        raise TicketError(f"{where}: metadata 'model' needs hidden and input_shape as lists of positive integers")
    if math.prod(shape) > _MAX_INPUT_ELEMENTS:
        raise TicketError(f"{where}: input_shape {shape} is implausibly large")
    if not isinstance(classes, int) or isinstance(classes, bool) or not 0 < classes <= 1_000_000:
        raise TicketError(f"{where}: num_classes must be a positive integer, got {classes!r}")
    try:
        with torch.device("meta"):
            return MODELS[name].builder(name, tuple(shape), classes, tuple(hidden))
    except (ModelError, ValueError, TypeError, RuntimeError) as exc:
        raise TicketError(f"{where}: model {name} cannot be built from the metadata: {exc}") from None


def _check_state(state: dict[str, torch.Tensor], skeleton: nn.Module, where: str) -> None:
    expected = skeleton.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise TicketError(f"{where}: tensors do not match model {type(skeleton).__name__}: "
                          f"missing {missing[:5]}, unexpected {extra[:5]}")
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape) or state[key].dtype != ref.dtype:
            raise TicketError(f"{where}: {key} is {state[key].dtype} {tuple(state[key].shape)}, "
                              f"the model needs {ref.dtype} {tuple(ref.shape)}")


def _json_metadata(metadata: dict[str, str], key: str, where: str) -> Any:
    try:
        return json.loads(metadata[key])
    except KeyError:
        raise TicketError(f"{where}: metadata has no {key!r}: not an lth-tui ticket or damaged") from None
    except json.JSONDecodeError as exc:
        raise TicketError(f"{where}: metadata {key!r} is not valid JSON ({exc})") from None


def read_ticket(path: Path | str) -> Ticket:
    """The checked contents of a ticket file; TicketError names anything wrong with it."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise TicketError(f"{where}: no such file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            keys = list(fh.keys())
            shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in keys}
            if metadata.get("format") != FORMAT or metadata.get("version") != VERSION:
                raise TicketError(f"{where}: not an lth-tui ticket (format {metadata.get('format')!r}, "
                                  f"version {metadata.get('version')!r}; expected {FORMAT!r} version {VERSION})")
            model = _json_metadata(metadata, "model", where)
            mask_names = _json_metadata(metadata, "masks", where)
            source = _json_metadata(metadata, "source", where)
            skeleton = _skeleton(model, where)
            expected = skeleton.state_dict()
            prunable = list(layer_kinds(skeleton))
            if not isinstance(mask_names, list) or sorted(mask_names) != sorted(prunable):
                raise TicketError(f"{where}: metadata 'masks' must list the prunable weights {prunable}")
            wanted = set(expected) | {f"{n}{MASK_SUFFIX}" for n in prunable}
            if set(keys) != wanted:
                raise TicketError(f"{where}: tensors do not match model {model.get('name')}: "
                                  f"missing {sorted(wanted - set(keys))[:5]}, "
                                  f"unexpected {sorted(set(keys) - wanted)[:5]}")
            for key, ref in expected.items():
                if shapes[key] != tuple(ref.shape):
                    raise TicketError(f"{where}: {key} has shape {shapes[key]}, the model needs {tuple(ref.shape)}")
            tensors = {k: fh.get_tensor(k) for k in keys}
    except TicketError:
        raise
    except Exception as exc:  # safetensors raises several types for a damaged header or body
        raise TicketError(f"{where}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    masks = {n: tensors.pop(f"{n}{MASK_SUFFIX}") for n in prunable}
    _check_state(tensors, skeleton, where)
    for name, mask in masks.items():
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(tensors[name].shape):
            raise TicketError(f"{where}: {name}{MASK_SUFFIX} must be a bool tensor "
                              f"of shape {tuple(tensors[name].shape)}")
        if bool((tensors[name][~mask] != 0).any()):
            raise TicketError(f"{where}: {name} is not 0 where its mask is 0: damaged, or not a pruned ticket")
    return Ticket(state=tensors, masks=masks, model=model, source=source if isinstance(source, dict) else {})


def load_ticket(path: Path | str, *, enforce_masks: bool = False) -> nn.Module:
    """A ready `nn.Module` (eval mode, CPU) holding the ticket's weights.

    With `enforce_masks`, torch.nn.utils.prune keeps the pruned entries at 0 through further
    training (the module's state_dict then has `<weight>_orig` and `<weight>_mask` entries).
    """
    ticket = read_ticket(path)
    m = ticket.model
    module = build_model(m["name"], input_shape=tuple(m["input_shape"]), num_classes=m["num_classes"],
                         hidden=tuple(m["hidden"]), init=m["init"], generator=torch.Generator().manual_seed(0))
    module.load_state_dict(ticket.state, strict=True)
    if enforce_masks:
        from torch.nn.utils import prune

        for name, mask in ticket.masks.items():
            owner, _, leaf = name.rpartition(".")
            prune.custom_from_mask(module.get_submodule(owner), leaf, mask)
    return module.eval()
