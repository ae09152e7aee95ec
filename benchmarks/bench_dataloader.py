"""Benchmark 3: our on-device batching against a DataLoader-fed loop like OpenLTH's.

The target (ours ≥ 3× the steps/s) is against the "OpenLTH-style" rows: a small
re-implementation, written here, of what OpenLTH (facebookresearch/open_lth: datasets/base.py,
mnist.py, cifar10.py, training/train.py) does per step:
  - examples stored as uint8: MNIST a (N, 28, 28) torch tensor, CIFAR-10 a (N, 32, 32, 3)
    numpy array; labels a numpy int64 array;
  - per example (`__getitem__`): `Image.fromarray` (mode "L" for MNIST), then
    `Compose(image_transforms + [ToTensor()] + tensor_transforms)`: MNIST
    Normalize([0.1307], [0.3081]), no augmentation; the CIFAR-10 train set with augmentation
    RandomHorizontalFlip(), RandomCrop(32, 4), then Normalize with ImageNet's mean and std
    (OpenLTH's choice);
  - a sampler yielding `torch.randperm(n, generator=seeded per epoch).tolist()`, a DataLoader
    with that sampler, default collate, no drop_last, `--workers` processes (default 0, as
    OpenLTH's platform), pin_memory only on CUDA;
  - each batch `.to(device)`; zero_grad, model.train(), cross-entropy, backward, dense Adam.
    (OpenLTH's per-step callbacks and LR-scheduler step are left out, and workers, if any, are
    started once instead of every epoch: both favour the baseline.)
Ours is engine.training.train_round (80% pruned, zero mask-0 action) on the same shapes held
on the device; against the CIFAR-10 OpenLTH row it also augments each batch on the device
with RandomCropFlip(padding=4), the crop+flip `data.augment = true` gives CIFAR-10, so both
sides do the same work.

The "TensorDataset" rows are the cheapest form a DataLoader-fed loop can take, for scale
only: the same sampler, loop and DataLoader over ready-normalised float32 CPU tensors (no
PIL, no per-example transforms, no augmentation; batches copied with non_blocking=True),
against ours without augmentation. MNIST- and CIFAR-10-shaped synthetic data (60000 / 50000
training examples by default).

    python benchmarks/bench_dataloader.py [--device cuda] [--model lenet-300-100] [--cifar-model conv2] [--workers 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import harness  # noqa: F401  (puts the repo root on sys.path)
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torchvision import transforms

from engine.dataset_files import CIFAR10_MEAN, CIFAR10_STD
from engine.dataset_tensors import RandomCropFlip

TARGET = 3.0
HEADER = ["data, model", "DataLoader baseline", "ours", "train examples", "DataLoader steps/s", "ours steps/s",
          "speed-up", "target", "result"]

# OpenLTH's normalisation constants (datasets/mnist.py, datasets/cifar10.py): CIFAR-10 uses ImageNet's.
OPENLTH_MNIST = ([0.1307], [0.3081])
OPENLTH_CIFAR10 = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def mnist_image(example: torch.Tensor) -> Image.Image:
    """OpenLTH's MNIST example_to_image: a (28, 28) uint8 tensor as a greyscale PIL image."""
    return Image.fromarray(example.numpy(), mode="L")


def cifar_image(example: np.ndarray) -> Image.Image:
    """OpenLTH's CIFAR-10 example_to_image: a (32, 32, 3) uint8 array as an RGB PIL image."""
    return Image.fromarray(example)


class ImageExamples(torch.utils.data.Dataset):
    """OpenLTH's ImageDataset: uint8 examples turned into normalised tensors one at a time.

    Module-level converters (not lambdas) so worker processes can be started by any method.
    """

    def __init__(self, examples: Any, labels: np.ndarray, to_image: Callable[[Any], Image.Image],
                 image_transforms: list[Callable], tensor_transforms: list[Callable]) -> None:
        self.examples, self.labels, self.to_image = examples, labels, to_image
        self.transform = transforms.Compose([*image_transforms, transforms.ToTensor(), *tensor_transforms])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.int64]:
        return self.transform(self.to_image(self.examples[index])), self.labels[index]


class ShuffleSampler(Sampler[int]):
    """OpenLTH's ShuffleSampler: a new permutation each epoch from a generator seeded with `seed`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seed = 0

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed)).tolist())

    def __len__(self) -> int:
        return self.n


def loader_loop(model: torch.nn.Module, loader: DataLoader, sampler: ShuffleSampler, device: torch.device,
                iterations: int, non_blocking: bool = False) -> None:
    """OpenLTH's training loop (training/train.py), dense, stopped after `iterations` steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1.2e-3)
    step = 0
    for epoch in itertools.count():
        sampler.seed = 1 + epoch  # train_loader.shuffle(data_order_seed + ep): a different order each epoch
        for x, y in loader:
            x, y = x.to(device, non_blocking=non_blocking), y.to(device, non_blocking=non_blocking).long()
            opt.zero_grad()
            model.train()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            step += 1
            if step == iterations:
                return


def one(args: argparse.Namespace, device: torch.device, shape: str, model_name: str, n_train: int) -> list[list]:
    """The rows of one dataset shape: OpenLTH-style (judged) and TensorDataset (for scale) against ours."""
    host = harness.synthetic_dataset(shape, n_train, 64, 64, torch.device("cpu"))
    case = harness.pruned_round(model_name, host.to(device), device, batch_size=args.batch_size,
                                iterations=args.iterations, pruned=args.pruned, optimizer="adam", lr=1.2e-3)
    # The same examples as OpenLTH stores them: uint8 pixels (labels stay int64, now numpy).
    pixels = ((host.train_x * 0.25 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    labels = host.train_y.numpy()
    if shape == "mnist":
        images = ImageExamples(pixels[:, 0].contiguous(), labels, mnist_image, [],
                               [transforms.Normalize(*OPENLTH_MNIST)])
        augmented, what, ours_what = None, "OpenLTH-style", "train_round"
    else:
        images = ImageExamples(pixels.permute(0, 2, 3, 1).contiguous().numpy(), labels, cifar_image,
                               [transforms.RandomHorizontalFlip(), transforms.RandomCrop(32, 4)],
                               [transforms.Normalize(*OPENLTH_CIFAR10)])
        # Pad with black in normalised units, as engine.datasets does for CIFAR-10 with data.augment = true.
        black = tuple(-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD))
        augmented = dataclasses.replace(case.data, augment=RandomCropFlip(padding=4, fill=black))
        what, ours_what = "OpenLTH-style + flip, crop", "train_round + RandomCropFlip"
    del pixels  # CIFAR: the NCHW copy is not needed any more (150 MB at full size)

    def fed(dataset: torch.utils.data.Dataset, non_blocking: bool) -> Callable[[], None]:
        sampler = ShuffleSampler(len(dataset))
        # persistent_workers: workers start once (in the warm-up); OpenLTH restarts them every epoch.
        loader = DataLoader(dataset, args.batch_size, sampler=sampler, num_workers=args.workers,
                            pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)

        def go() -> None:
            case.model.load_state_dict(case.theta0)
            loader_loop(case.model, loader, sampler, device, args.iterations, non_blocking)
        return go

    contenders = {"openlth": fed(images, non_blocking=False),
                  "tensors": fed(TensorDataset(host.train_x, host.train_y), True),
                  "ours": case.ours()}
    if augmented is not None:
        contenders["ours-augmented"] = case.ours(data=augmented)
    times = harness.alternate(contenders, args.repeats, device)
    ours_vs_openlth = times["ours" if augmented is None else "ours-augmented"]
    label = f"{shape} {tuple(host.input_shape)}, {model_name}"
    speedup = times["openlth"] / ours_vs_openlth
    scale = times["tensors"] / times["ours"]
    return [[label, what, ours_what, n_train, args.iterations / times["openlth"], args.iterations / ours_vs_openlth,
             speedup, f"≥ {TARGET:.1f}×", harness.verdict(speedup, TARGET, lower_is_better=False)],
            [label, "TensorDataset", "train_round", n_train, args.iterations / times["tensors"],
             args.iterations / times["ours"], scale, "", "for scale"]]


def main(argv: list[str] | None = None) -> None:
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="lenet-300-100", help="model for the MNIST-shaped data")
    p.add_argument("--cifar-model", default="lenet-300-100",
                   help="model for the CIFAR-shaped data (e.g. conv2 on a GPU)")
    p.add_argument("--batch-size", type=int, default=60)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--mnist-size", type=int, default=60000)
    p.add_argument("--cifar-size", type=int, default=50000)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0, as OpenLTH)")
    p.add_argument("--pruned", type=float, default=0.8)
    args = p.parse_args(argv)
    device = harness.setup(args)
    rows = [*one(args, device, "mnist", args.model, args.mnist_size),
            *one(args, device, "cifar10", args.cifar_model, args.cifar_size)]
    loader = f"batch {args.batch_size}, num_workers={args.workers}, pin_memory={device.type == 'cuda'}"
    if args.workers:
        loader += ", workers started once (OpenLTH: every epoch)"
    harness.table(
        f"3. on-device batches vs a DataLoader-fed loop ({harness.machine(device)})", HEADER, rows,
        [f"OpenLTH-style (the target's baseline): uint8 examples, per example PIL Image.fromarray → Compose(image "
         f"transforms, ToTensor, Normalize), default collate; MNIST no augmentation, Normalize(0.1307, 0.3081); "
         f"CIFAR-10 "
         f"RandomHorizontalFlip + RandomCrop(32, 4), Normalize(ImageNet mean/std); sampler randperm(n).tolist() per "
         f"epoch, no drop_last; {loader}; each batch .to(device); dense Adam",
         "TensorDataset (cheapest DataLoader form, for scale, not the target): the same sampler, loop and loader over "
         "ready-normalised float32 CPU tensors, no per-example transforms, no augmentation, non_blocking copies",
         f"ours: engine.training.train_round, data on the device, {args.pruned:.0%} pruned (zero), Adam; against "
         f"OpenLTH-style CIFAR-10 also RandomCropFlip(padding=4) on the device every batch (data.augment = true)",
         f"synthetic data of each shape; {args.iterations} iterations per timing; median of {args.repeats}"])


if __name__ == "__main__":
    main()
