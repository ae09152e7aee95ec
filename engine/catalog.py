"""The names in the engine's registries and what a picker shows of them, without importing torch.

Validating a config, listing presets and runs, exporting a summary and painting the app's
Setup screen need the registries' names (and a dataset's shape, a model's description), not
their code. The registries themselves (engine.datasets, engine.models, engine.criteria,
engine.actions) import torch, which costs seconds on a busy machine; this module is their
torch-free index. tests/test_catalog.py holds it equal to the registries, so a name added to
a registry and forgotten here fails the tests instead of being refused by validation. The one
rule validation needs from a registry (`openlth_problem`, which settings the OpenLTH count
accepts) lives here too, for the same reason; engine.criteria uses it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BIAS_INITS", "BN_INITS", "COUNTS", "CRITERIA", "DATASETS", "INIT_SCHEMES", "MASK0_ACTIONS",
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
