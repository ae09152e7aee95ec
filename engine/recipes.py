"""Each experiment's own optimizer recipe for the tensors it trains.

IMP trains the weights with [train]'s optimizer keys. Mask training (engine/supermasks.py)
trains mask logits or scores, which need a very different recipe: at IMP's Adam 2e-3 Zhou's
logits barely move and a run ends near chance. So [supermask] has its own optimizer keys and
"auto" in any of them takes the experiment's published default below; [train]'s optimizer keys
never reach mask training.

- supermask: Zhou et al.'s train_supermask.py (uber-research/deconstructing-lottery-tickets):
  SGD with momentum 0.9 (its --mom default), lr 100 (the README's command), no L2 (--l2 0),
  constant learning rate (--decay_schedule -1).
- edge-popup: Ramanujan et al.'s configs (allenai/hidden-networks, configs/smallscale/*/
  *_usc_unsigned.yml): SGD lr 0.1, momentum 0.9, weight decay 1e-4, cosine schedule.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from engine.config import ExperimentConfig, TrainConfig
from engine.experiments import experiment_of

__all__ = ["MASK_RECIPES", "RECIPE_KEYS", "mask_recipe", "recipe_text"]

RECIPE_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "schedule")

MASK_RECIPES: dict[str, dict[str, Any]] = {
    "supermask": {"optimizer": "sgd", "lr": 100.0, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant",
                  "source": "Zhou et al."},
    "edge-popup": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "cosine",
                   "source": "Ramanujan et al."},
}


def mask_recipe(config: ExperimentConfig) -> TrainConfig:
    """[train] with its optimizer keys replaced by the mask-training recipe in force."""
    defaults = MASK_RECIPES[config.experiment]
    chosen = {key: getattr(config.supermask, key) for key in RECIPE_KEYS}
    resolved = {key: defaults[key] if value == "auto" else value for key, value in chosen.items()}
    return dataclasses.replace(config.train, **resolved)


def recipe_text(config: ExperimentConfig) -> str:
    """One line naming the optimizer recipe a run with this config trains with, and where it comes from."""
    if not experiment_of(config).mask_training:
        t = config.train
        head = f"IMP recipe ([train]): {t.optimizer} lr {t.lr:g}"
    else:
        t = mask_recipe(config)
        autos = [key for key in RECIPE_KEYS if getattr(config.supermask, key) == "auto"]
        origin = MASK_RECIPES[config.experiment]["source"]
        where = (f"{origin}'s defaults" if len(autos) == len(RECIPE_KEYS)
                 else f"[supermask], {origin}'s for {', '.join(autos)}" if autos else "[supermask]")
        head = f"{config.experiment} recipe ({where}): {t.optimizer} lr {t.lr:g}"
    extra = f", momentum {t.momentum:g}" if t.optimizer == "sgd" and t.momentum else ""
    extra += f", weight decay {t.weight_decay:g}" if t.weight_decay else ""
    return f"{head}{extra}, {t.schedule} schedule"
