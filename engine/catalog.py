"""The names in the engine's registries and what a picker shows of them, without importing torch.

Validating a config, listing presets and runs, exporting a summary and painting the app's
Setup screen need the registries' names (and a dataset's shape, a model's description), not
their code. The registries themselves (engine.datasets, engine.models, engine.criteria,
engine.actions) import torch, which costs seconds on a busy machine; this module is their
torch-free index. tests/test_catalog.py holds it equal to the registries, so a name added to
a registry and forgotten here fails the tests instead of being refused by validation. The one
rule validation needs from a registry (`openlth_problem`, which settings the OpenLTH count
accepts) lives here too, for the same reason; engine.criteria uses it from here. The
experiment kinds need no entry: their registry (engine/experiments.py) is torch-free itself.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BIAS_INITS", "BN_INITS", "CHOICE_HELP", "COUNTS", "CRITERIA", "DATASETS", "INIT_SCHEMES", "MASK0_ACTIONS",
           "MASK1_ACTIONS", "MODELS", "SCOPES", "DatasetInfo", "ModelInfo", "openlth_problem"]


@dataclass(frozen=True)
class DatasetInfo:
    """What Setup and validation know about a dataset before loading it."""

    name: str
    description: str
    input_shape: tuple[int, ...]
    num_classes: int


@dataclass(frozen=True)
class ModelInfo:
    """What Setup and validation know about a model before building it."""

    name: str
    description: str
    needs_image: bool  # conv nets: they need an input shape (C, H, W)


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo("mnist1d", "MNIST-1D: 1-D signals of length 40, 4000 train / 1000 test, generated", (40,), 10),
    DatasetInfo("digits", "scikit-learn digits: 8×8 images, 1437 train / 360 test, bundled (no files)", (1, 8, 8), 10),
    DatasetInfo("mnist", "MNIST: 28×28 handwritten digits, 60000 train / 10000 test", (1, 28, 28), 10),
    DatasetInfo("fashion-mnist", "Fashion-MNIST: 28×28 clothing images, 60000 train / 10000 test", (1, 28, 28), 10),
    DatasetInfo("cifar10", "CIFAR-10: 32×32 colour images, 50000 train / 10000 test", (3, 32, 32), 10),
)}

MODELS: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("mlp", "fully connected net, ReLU, widths from model.hidden", False),
    ModelInfo("lenet-300-100", "Frankle & Carbin's LeNet: FC 300-100, ReLU", False),
    ModelInfo("conv2", "Frankle & Carbin Conv-2: 2 conv 64, pool, FC 256-256", True),
    ModelInfo("conv4", "Frankle & Carbin Conv-4: conv 64-64-128-128, 2 pools, FC 256-256", True),
    ModelInfo("conv6", "Frankle & Carbin Conv-6: conv 64..256 ×6, 3 pools, FC 256-256", True),
    ModelInfo("vgg16", "OpenLTH CIFAR VGG-16 with BatchNorm (~14.7M params)", True),
    ModelInfo("vgg19", "OpenLTH CIFAR VGG-19 with BatchNorm (~20M params)", True),
    ModelInfo("resnet20", "OpenLTH CIFAR ResNet-20, widths 16-32-64 (~0.27M params)", True),
)}

INIT_SCHEMES: tuple[str, ...] = ("glorot-normal", "kaiming-normal", "torch-default")
BN_INITS: tuple[str, ...] = ("ones", "uniform")
BIAS_INITS: tuple[str, ...] = ("zeros", "torch-default")
SCOPES: tuple[str, ...] = ("layerwise", "global")
COUNTS: tuple[str, ...] = ("exact", "openlth")  # how many a global prune removes (engine/criteria.py)
CRITERIA: tuple[str, ...] = (
    "large_final", "small_final", "large_init", "small_init", "large_init_large_final", "small_init_small_final",
    "magnitude_increase", "movement", "random", "large_final_same_sign", "large_final_diff_sign",
    "magnitude_increase_same_sign",
)
MASK1_ACTIONS: tuple[str, ...] = (
    "rewind", "random_reinit", "random_reshuffle", "signed_reinit", "signed_reshuffle", "signed_constant",
    "rand_signed_constant",
)
MASK0_ACTIONS: tuple[str, ...] = ("zero", "freeze_init", "freeze_init_zero_mask", "freeze_init_zero_all")


def openlth_problem(criterion: str, scope: str, rates: dict[str, float]) -> str | None:
    """Why OpenLTH's sparse_global rule has no meaning for these settings, or None."""
    if criterion != "large_final":
        return (f"OpenLTH's sparse_global rule thresholds trained magnitudes: it needs criterion "
                f"large_final, not {criterion!r} (or count exact)")
    nonzero = sorted({float(r) for r in rates.values() if r > 0})
    if scope == "global" and len(nonzero) > 1:
        return (f"OpenLTH's sparse_global rule has one pruning fraction, but the non-zero rates "
                f"{', '.join(map(str, nonzero))} differ under global scope (make them equal; a kind "
                f"at rate 0 is an ignored layer)")
    return None


# The first line of each criterion's and action's docstring: Setup's one-line hint for it.
CHOICE_HELP: dict[str, dict[str, str]] = {
    'prune.criterion': {
        'large_final': "Keep the largest |w_f| (Frankle & Carbin's IMP).",
        'small_final': 'Keep the smallest |w_f| (a control that should fail).',
        'large_init': 'Keep the largest |w_i|, ignoring training.',
        'small_init': 'Keep the smallest |w_i|.',
        'large_init_large_final': 'Keep weights large both at the start and the end.',
        'small_init_small_final': 'Keep weights small both at the start and the end.',
        'magnitude_increase': 'Keep the weights that grew most: |w_f| − |w_i|.',
        'movement': 'Keep the weights that moved most: |w_f − w_i|.',
        'random': 'Keep a random subset: the random-pruning baseline.',
        'large_final_same_sign': 'Largest |w_f| among weights that kept their sign.',
        'large_final_diff_sign': 'Largest |w_f| among weights whose sign flipped.',
        'magnitude_increase_same_sign': 'Most grown |w_f| − |w_i| among sign keepers.',
    },
    'prune.mask1': {
        'rewind': 'Restart from the rewind point θ0 / θk: the ticket.',
        'random_reinit': 'A fresh init draw: the random-reinit control.',
        'random_reshuffle': "The layer's kept init values, shuffled.",
        'signed_reinit': 'A fresh init draw with the sign of θ0.',
        'signed_reshuffle': 'Kept init magnitudes shuffled, sign of θ0 kept.',
        'signed_constant': "σ_layer · sign(θ0): Zhou's signed constant.",
        'rand_signed_constant': '±σ_layer with random signs (a control).',
    },
    'prune.mask0': {
        'zero': 'Pruned weights are 0 and stay 0.',
        'freeze_init': 'Pruned weights frozen at their init value.',
        'freeze_init_zero_mask': "Frozen at init; zeroed ones go to 0 (Zhou's variant 1).",
        'freeze_init_zero_all': 'Every zeroed weight goes to 0, kept ones too (Zhou v2).',
    },
}
