"""The one optimizer builder, and optimizer state in and out of checkpoint files.

Every experiment trains through `engine.training.Loop`, whose step adds weight decay to the
gradient itself (so IMP can mask it with the gradient, and every experiment decays the same
way); the optimizer is therefore always built with weight_decay = 0. SGD and Adam compute
`grad + wd * p` either way, so moving the decay out of the optimizer changes no number.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.config import TrainConfig

__all__ = ["add_weight_decay", "build_optimizer", "match_layout", "pack_optimizer", "unpack_optimizer"]


def build_optimizer(params: list[torch.Tensor], config: TrainConfig, *, fused: bool = True) -> torch.optim.Optimizer:
    """SGD or Adam over `params` with [train]'s (or a mask recipe's) lr and momentum.

    fused (one kernel per tensor, where this torch build has it) is the same update rule; it
    is much faster on pruned nets: the unfused Adam takes a sqrt over every pruned position's
    zero second moment, which some CPUs do ~10x slower (benchmarks/bench_masked_step.py).
    Mask training keeps torch's default implementation (`fused=False`), as it always has,
    so its runs stay bit-identical.
    """
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": 0.0}
    if config.optimizer == "sgd":
        kwargs["momentum"] = config.momentum
    cls = torch.optim.SGD if config.optimizer == "sgd" else torch.optim.Adam
    if fused and params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # a build or device without the fused kernel
            pass
    return cls(params, **kwargs)


def add_weight_decay(params: list[torch.Tensor], weight_decay: float) -> None:
    """grad += weight_decay * p for every parameter that has a gradient (before any masking)."""
    if weight_decay:
        with_grad = [p for p in params if p.grad is not None]
        torch._foreach_add_([p.grad for p in with_grad], with_grad, alpha=weight_decay)


def match_layout(optimizer: torch.optim.Optimizer) -> None:
    """Optimizer state loaded from a checkpoint in the memory format of its parameters."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape and value.stride() != p.stride():
                    state[key] = torch.empty_like(p).copy_(value)


def pack_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state_dict as tensors `opt.<index>.<slot>` and JSON (slots, param_groups)."""
    tensors: dict[str, torch.Tensor] = {}
    slots: dict[str, list[str]] = {}
    for index, values in state_dict["state"].items():
        slots[str(index)] = []
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{index}.{key}"] = value
                slots[str(index)].append(key)
    return tensors, {"slots": slots, "param_groups": state_dict["param_groups"]}


def unpack_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """The state_dict `pack_optimizer` wrote."""
    state = {int(i): {key: tensors[f"opt.{i}.{key}"] for key in keys} for i, keys in meta["slots"].items()}
    return {"state": state, "param_groups": meta["param_groups"]}
