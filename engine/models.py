"""The networks of the lottery-ticket papers, built and initialised reproducibly.

Every model here is created on the meta device and then initialised, tensor by tensor, from
the caller's `torch.Generator`. That gives two guarantees the experiments depend on:

* the same generator seed gives bit-identical θ0, so a trial can be re-run or resumed and its
  random-reinit control compared against the same starting point;
* the global RNG is never touched, so building a model cannot shift the data order, dropout
  masks or tie-breaking draws of the rest of a run.

Parameter names are the `state_dict` keys stored in the run store's safetensors files and
shown in the app's per-layer table. The VGG and ResNet models follow OpenLTH's module layout
(`layers.<i>.conv.weight`, `blocks.<i>.conv1.weight`, `fc.weight`), and the fully connected
nets OpenLTH's LeNet (`fc_layers.<i>.weight`, `fc.weight`), so the names mean the same thing
as in that code base.

Prunable weights are the weights of every Conv2d and Linear layer; biases and BatchNorm
parameters are never pruned. `layer_kinds` tags them `conv`, `fc` or `output` (the last
Linear layer) so per-layer-type pruning rates can be configured in one line.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BIAS_INITS",
    "BN_INITS",
    "INIT_SCHEMES",
    "MODELS",
    "ModelError",
    "ModelSpec",
    "build_model",
    "fresh_weights",
    "init_std",
    "layer_kinds",
    "model_options",
]

# torch-default: PyTorch's own Linear/Conv2d weight init, kaiming_uniform_(a=√5) = U(±1/√fan_in)
# (Greydanus' MNIST-1D notebook keeps it).
INIT_SCHEMES: tuple[str, ...] = ("glorot-normal", "kaiming-normal", "torch-default")
BN_INITS: tuple[str, ...] = ("ones", "uniform")
BIAS_INITS: tuple[str, ...] = ("zeros", "torch-default")

_FLAT_MODELS = ("mlp", "lenet-300-100")


class ModelError(ValueError):
    """A model request that cannot be built; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model picker."""

    name: str
    description: str  # one line for the app's picker
    needs_image: bool  # True for conv nets: they need an input shape (C, H, W)
    # internal: (name, input_shape, num_classes, hidden) -> uninitialised module
    builder: Callable[..., nn.Module]


# --------------------------------------------------------------------------------------------
# Fully connected nets (Frankle & Carbin's LeNet-300-100 and its variable-width sibling)
# --------------------------------------------------------------------------------------------


class MLP(nn.Module):
    """Flatten, then Linear+ReLU per hidden width, then a Linear output layer.

    `residual`: a hidden layer after the first whose input and output widths match adds its
    input, h + relu(W h + b), as the MLP of Greydanus' MNIST-1D lottery-ticket notebook does.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, residual: bool = False) -> None:
        super().__init__()
        widths = [in_features, *hidden]
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc = nn.Linear(widths[-1], num_classes)
        self.skips = tuple(residual and i > 0 and a == b for i, (a, b) in enumerate(zip(widths, widths[1:])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer, skip in zip(self.fc_layers, self.skips):
            x = x + F.relu(layer(x)) if skip else F.relu(layer(x))
        return self.fc(x)


# --------------------------------------------------------------------------------------------
# Frankle & Carbin's Conv-2 / Conv-4 / Conv-6
# --------------------------------------------------------------------------------------------

# Output channels per conv layer; a 2×2 max-pool follows every second conv.
_CONV_PLANS: dict[str, tuple[int, ...]] = {
    "conv2": (64, 64),
    "conv4": (64, 64, 128, 128),
    "conv6": (64, 64, 128, 128, 256, 256),
}
_CONV_FC_WIDTHS = (256, 256)


class ConvNet(nn.Module):
    """3×3 conv (padding 1) + ReLU layers, max-pool after each pair, then FC 256, 256, output."""

    def __init__(self, in_channels: int, height: int, width: int, plan: Sequence[int],
                 num_classes: int) -> None:
        super().__init__()
        channels = [in_channels, *plan]
        self.conv_layers = nn.ModuleList(
            nn.Conv2d(a, b, kernel_size=3, padding=1) for a, b in zip(channels, channels[1:])
        )
        pools = len(plan) // 2
        flat = channels[-1] * (height >> pools) * (width >> pools)
        widths = [flat, *_CONV_FC_WIDTHS]
        self.fc_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, conv in enumerate(self.conv_layers):
            x = F.relu(conv(x))
            if index % 2 == 1:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = x.flatten(1)
        for layer in self.fc_layers:
            x = F.relu(layer(x))
        return self.fc(x)


# --------------------------------------------------------------------------------------------
# OpenLTH's CIFAR VGG
# --------------------------------------------------------------------------------------------

_VGG_PLANS: dict[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512),
}


class VGGConvModule(nn.Module):
    """conv3×3 + BatchNorm + ReLU; the conv keeps its bias, as in OpenLTH, so names and
    parameter counts match that code base (the bias is redundant under BN but harmless)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class VGG(nn.Module):
    """VGG for small images: the conv plan, global average pool, one Linear output layer.

    OpenLTH applies AvgPool2d(2) to the 2×2 map CIFAR leaves; an adaptive pool gives the same
    result there and also works for other image sizes.
    """

    def __init__(self, in_channels: int, plan: Sequence[int | str], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for spec in plan:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(VGGConvModule(channels, int(spec)))
                channels = int(spec)
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# --------------------------------------------------------------------------------------------
# OpenLTH's cifar_resnet_20 (He et al. 2016, CIFAR variant)
# --------------------------------------------------------------------------------------------

_RESNET20_PLAN: tuple[tuple[int, int], ...] = ((16, 3), (32, 3), (64, 3))  # (width, blocks)


class ResNetBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, ReLU after the add; a 1×1 conv+BN shortcut where
    the shape changes. Convs carry no bias because BN follows each of them."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride,
                               padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if downsample or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet: conv3×3 stem + BN + ReLU, stages of basic blocks, global average pool,
    one Linear output layer."""

    def __init__(self, in_channels: int, plan: Sequence[tuple[int, int]], num_classes: int) -> None:
        super().__init__()
        channels = plan[0][0]
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        blocks: list[nn.Module] = []
        for stage, (width, count) in enumerate(plan):
            for index in range(count):
                blocks.append(ResNetBlock(channels, width, downsample=stage > 0 and index == 0))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


# --------------------------------------------------------------------------------------------
# Builders: validate the request against the model, then construct (uninitialised)
# --------------------------------------------------------------------------------------------


def _image_shape(name: str, input_shape: tuple[int, ...], pools: int) -> tuple[int, int, int]:
    """(C, H, W) for a conv net, or a ModelError that says why the dataset does not fit."""
    if len(input_shape) != 3:
        flat_hint = (f"; use {' or '.join(repr(m) for m in _FLAT_MODELS)} for flat inputs"
                     if len(input_shape) == 1 else "")
        raise ModelError(
            f"model {name!r} needs image inputs of shape (C, H, W), but the dataset's input "
            f"shape is {tuple(input_shape)}{flat_hint}"
        )
    channels, height, width = input_shape
    minimum = 2 ** pools
    if height < minimum or width < minimum:
        raise ModelError(
            f"model {name!r} has {pools} 2×2 max-pools and needs images of at least "
            f"{minimum}×{minimum}, but the dataset's input shape is {tuple(input_shape)}"
        )
    return channels, height, width


def _positive_ints(values: object) -> tuple[int, ...] | None:
    """`values` as a tuple of positive Python ints, or None if it is not one.

    Integer-like values (numpy or 0-d torch integers, via __index__) are accepted because
    shapes and class counts often come out of array code; floats, strings and bools are not.
    """
    if not isinstance(values, Sequence) or isinstance(values, str):
        return None
    result = []
    for value in values:
        if isinstance(value, bool):
            return None
        try:
            number = operator.index(value)
        except TypeError:
            return None
        if number < 1:
            return None
        result.append(number)
    return tuple(result)


def _check_hidden(hidden: Sequence[int]) -> tuple[int, ...]:
    values = _positive_ints(hidden)
    if not values:
        raise ModelError(
            f"model.hidden must be a non-empty list of positive integer widths "
            f"(e.g. [300, 100]), got {hidden!r}"
        )
    return values


def _build_mlp(name: str, input_shape: tuple[int, ...], num_classes: int,
               hidden: Sequence[int], residual: bool = False) -> nn.Module:
    widths = (300, 100) if name == "lenet-300-100" else _check_hidden(hidden)
    return MLP(math.prod(input_shape), widths, num_classes, residual=residual and name == "mlp")


def _build_conv(name: str, input_shape: tuple[int, ...], num_classes: int,
                hidden: Sequence[int]) -> nn.Module:
    plan = _CONV_PLANS[name]
    channels, height, width = _image_shape(name, input_shape, pools=len(plan) // 2)
    return ConvNet(channels, height, width, plan, num_classes)


def _build_vgg(name: str, input_shape: tuple[int, ...], num_classes: int,
               hidden: Sequence[int]) -> nn.Module:
    plan = _VGG_PLANS[name]
    channels, _, _ = _image_shape(name, input_shape, pools=plan.count("M"))
    return VGG(channels, plan, num_classes)


def _build_resnet(name: str, input_shape: tuple[int, ...], num_classes: int,
                  hidden: Sequence[int]) -> nn.Module:
    # Strided 3×3 convs with padding 1 never shrink a map below 1×1, so any size works.
    channels, _, _ = _image_shape(name, input_shape, pools=0)
    return ResNet(channels, _RESNET20_PLAN, num_classes)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("mlp", "fully connected net, ReLU, widths from model.hidden", False, _build_mlp),
        ModelSpec("lenet-300-100", "Frankle & Carbin's LeNet: FC 300-100, ReLU", False,
                  _build_mlp),
        ModelSpec("conv2", "Frankle & Carbin Conv-2: 2 conv 64, pool, FC 256-256", True,
                  _build_conv),
        ModelSpec("conv4", "Frankle & Carbin Conv-4: conv 64-64-128-128, 2 pools, FC 256-256",
                  True, _build_conv),
        ModelSpec("conv6", "Frankle & Carbin Conv-6: conv 64..256 ×6, 3 pools, FC 256-256",
                  True, _build_conv),
        ModelSpec("vgg16", "OpenLTH CIFAR VGG-16 with BatchNorm (~14.7M params)", True,
                  _build_vgg),
        ModelSpec("vgg19", "OpenLTH CIFAR VGG-19 with BatchNorm (~20M params)", True,
                  _build_vgg),
        ModelSpec("resnet20", "OpenLTH CIFAR ResNet-20, widths 16-32-64 (~0.27M params)", True,
                  _build_resnet),
    )
}


# --------------------------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------------------------


def _check_init(init: str) -> None:
    if init not in INIT_SCHEMES:
        raise ModelError(f"unknown init {init!r}; allowed: {', '.join(INIT_SCHEMES)}")


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ModelError(f"generator must be a CPU torch.Generator, got {generator!r}")


def _fans(shape: torch.Size) -> tuple[int, int]:
    """(fan_in, fan_out) exactly as torch.nn.init computes them: a conv kernel's receptive
    field multiplies both."""
    if len(shape) < 2:
        raise ModelError(f"fans need a weight with at least 2 dimensions, got shape {tuple(shape)}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _std(shape: torch.Size, init: str) -> float:
    fan_in, fan_out = _fans(shape)
    if init == "glorot-normal":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init == "torch-default":
        return 1.0 / math.sqrt(3.0 * fan_in)  # U(±1/√fan_in)
    return math.sqrt(2.0 / fan_in)  # kaiming-normal, fan_in mode, ReLU gain √2


def _draw_(weight: torch.Tensor, init: str, generator: torch.Generator) -> torch.Tensor:
    """Fill `weight` in place from the init distribution using only `generator`."""
    if init == "glorot-normal":
        return nn.init.xavier_normal_(weight, generator=generator)
    if init == "torch-default":
        return nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    return nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu", generator=generator)


@torch.no_grad()
def _initialise(model: nn.Module, init: str, generator: torch.Generator, bn_init: str = "ones",
                bias_init: str = "zeros") -> None:
    """Give every parameter and buffer of a freshly materialised model its starting value.

    Modules are visited in registration order, so the draw order, and with it θ0, depends only
    on the architecture and the generator. A module type this function does not know would be
    left with uninitialised memory, so it is refused instead. bias_init "torch-default" draws
    a layer's bias U(±1/√fan_in) right after its weight, bn_init "uniform" a BatchNorm weight
    U[0,1) (OpenLTH's bn_initializers.uniform); the defaults draw nothing, so θ0 of a config
    that does not set them is what it always was.
    """
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _draw_(module.weight, init, generator)
            if module.bias is not None and bias_init == "torch-default":
                bound = 1.0 / math.sqrt(_fans(module.weight.shape)[0])
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            module.reset_parameters()  # weight 1, bias 0, running mean 0 / var 1, count 0
            if bn_init == "uniform":
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator))
        elif any(True for _ in module.parameters(recurse=False)) or any(
                True for _ in module.buffers(recurse=False)):
            raise TypeError(
                f"no initialisation rule for {type(module).__name__} at {module_name!r}")


def model_options(config: Any) -> dict[str, Any]:
    """build_model's keyword options an ExperimentConfig's [model] section sets (besides name,
    hidden and init): every builder of a run's model passes them, so LMC, resume and the
    checks before a run all build the same architecture with the same θ0."""
    m = config.model
    return {"bn_init": m.bn_init, "bias_init": m.bias_init, "residual": m.residual}


def build_model(name: str, *, input_shape: tuple[int, ...], num_classes: int,
                hidden: Sequence[int] = (300, 100), init: str = "glorot-normal",
                generator: torch.Generator, bn_init: str = "ones", bias_init: str = "zeros",
                residual: bool = False) -> nn.Module:
    """Build model `name` for inputs of `input_shape` and initialise it from `generator`.

    The same generator state gives bit-identical parameters; the global RNG is not touched
    (the modules are constructed on the meta device, so their default initialisers draw
    nothing, then materialised on the CPU and filled from `generator` alone).
    `hidden` and `residual` are used by `mlp` only. Raises ModelError for anything the model
    cannot take.
    """
    spec = MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    _check_init(init)
    if bn_init not in BN_INITS or bias_init not in BIAS_INITS:
        raise ModelError(f"bn_init {bn_init!r} / bias_init {bias_init!r}: allowed {BN_INITS} / {BIAS_INITS}")
    _check_generator(generator)
    shape = _positive_ints(input_shape)
    if not shape:
        raise ModelError(
            f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}")
    classes = _positive_ints([num_classes])
    if not classes:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}")
    num_classes = classes[0]

    with torch.device("meta"):
        model = spec.builder(name, shape, num_classes, hidden, residual) if spec.builder is _build_mlp \
            else spec.builder(name, shape, num_classes, hidden)
    check_fits(count_parameters(model), torch.device("cpu"), HOST_COPIES, what=f"model {name!r}")
    model = model.to_empty(device="cpu")
    _initialise(model, init, generator, bn_init, bias_init)
    return model


# Float32 copies of the parameters a run keeps: on the host the model, θ0 and a round's start
# and final weights; on the training device the model, its gradients, Adam's two moments, the
# masks, fills and evaluation activations, rounded up.
HOST_COPIES = 4
DEVICE_COPIES = 8


def count_parameters(model: nn.Module) -> int:
    """Parameters and buffers of a model (on the meta device this allocates nothing)."""
    return sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())


def device_memory(device: torch.device) -> int | None:
    """Bytes of memory the device has (the host's RAM for the CPU), or None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(parameters: int, device: torch.device, copies: int = DEVICE_COPIES, what: str = "the model") -> None:
    """ModelError when `copies` float32 copies of the model exceed what the device has: an
    estimate made before allocating, so a typo like hidden = [4000000000000] is refused with
    a message instead of an out-of-memory crash."""
    need = parameters * 4 * copies
    have = device_memory(device)
    if have is not None and need > have:
        raise ModelError(f"{what} has {parameters:,} parameters: training it needs about {need / 2 ** 30:,.1f} GiB, "
                         f"more than the {have / 2 ** 30:,.1f} GiB of {torch.device(device).type}; use smaller layers")


def estimate_parameters(name: str, *, input_shape: tuple[int, ...], num_classes: int,
                        hidden: Sequence[int] = (300, 100)) -> int:
    """The parameter count of model `name`, built on the meta device (nothing allocated)."""
    spec = MODELS.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; allowed: {', '.join(MODELS)}")
    with torch.device("meta"):
        return count_parameters(spec.builder(name, tuple(input_shape), num_classes, hidden))


# --------------------------------------------------------------------------------------------
# What the pruning code needs to know about a model
# --------------------------------------------------------------------------------------------


def layer_kinds(model: nn.Module) -> dict[str, str]:
    """Prunable weight name -> 'conv' | 'fc' | 'output', in parameter order.

    Every Conv2d weight is 'conv'; every Linear weight is 'fc' except the last Linear layer's,
    which is 'output' (so Frankle's slower output-layer pruning rate is one config entry).
    Biases and BatchNorm parameters are not listed: they are never pruned.
    """
    kinds: dict[str, str] = {}
    last_linear = None
    for module_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            kinds[_join(module_name, "weight")] = "conv"
        elif isinstance(module, nn.Linear):
            kinds[_join(module_name, "weight")] = "fc"
            last_linear = _join(module_name, "weight")
    if last_linear is not None:
        kinds[last_linear] = "output"
    return {name: kinds[name] for name, _ in model.named_parameters() if name in kinds}


def _join(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


def _prunable_weight(model: nn.Module, name: str) -> torch.Tensor:
    kinds = layer_kinds(model)
    if name not in kinds:
        raise ModelError(
            f"{name!r} is not a prunable weight of this model; prunable weights: {', '.join(kinds)}"
        )
    return model.get_parameter(name)


def init_std(model: nn.Module, name: str, init: str) -> float:
    """σ of the init distribution of prunable weight `name` under scheme `init`.

    glorot-normal: √(2 / (fan_in + fan_out)); kaiming-normal: √(2 / fan_in), with fans as
    torch.nn.init computes them. The signed-constant mask-1 actions set kept weights to
    ±σ of their layer, so this must be the σ the layer was actually drawn with.
    """
    _check_init(init)
    return _std(_prunable_weight(model, name).shape, init)


@torch.no_grad()
def fresh_weights(model: nn.Module, init: str,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A new draw of every prunable weight from the init distribution, for the random_reinit
    control: same names, shapes and dtypes as the model's weights, on the CPU, the model itself
    untouched. Draws come from `generator` only, in parameter order.
    """
    _check_init(init)
    _check_generator(generator)
    weights: dict[str, torch.Tensor] = {}
    for name in layer_kinds(model):
        current = model.get_parameter(name)
        weights[name] = _draw_(torch.empty(current.shape, dtype=current.dtype), init, generator)
    return weights
