"""Tests of engine.datasets: the registry, splits, file readers, cache and augmentation.

Everything runs offline: MNIST-style IDX files and CIFAR-10 batches are written here in
their real on-disk formats, and torchvision downloads are replaced by fakes.
"""

from __future__ import annotations

import gzip
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import dataset_generated
from engine.dataset_tensors import RandomCropFlip, validation_split
from engine.datasets import (
    DATASETS,
    Dataset,
    DatasetError,
    default_data_dir,
    load_dataset,
)

CIFAR_MEAN = torch.tensor((0.4914, 0.4822, 0.4465)).view(1, 3, 1, 1)
CIFAR_STD = torch.tensor((0.2470, 0.2435, 0.2616)).view(1, 3, 1, 1)


# ---------------------------------------------------------------------------------------------
# writers of the real on-disk formats


def write_idx(path: Path, array: np.ndarray, magic: int, *, gz: bool = False) -> Path:
    """An IDX file: big-endian magic, one uint32 per dim, then the uint8 data."""
    payload = magic.to_bytes(4, "big")
    payload += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload += np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


def write_mnist(root: Path, folder: str, *, n_train: int = 50, n_test: int = 20,
                gz: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_x": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_y": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_x": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_y": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    raw = root / folder / "raw"
    write_idx(raw / "train-images-idx3-ubyte", arrays["train_x"], 2051, gz=gz)
    write_idx(raw / "train-labels-idx1-ubyte", arrays["train_y"], 2049, gz=gz)
    write_idx(raw / "t10k-images-idx3-ubyte", arrays["test_x"], 2051, gz=gz)
    write_idx(raw / "t10k-labels-idx1-ubyte", arrays["test_y"], 2049, gz=gz)
    return arrays


def write_cifar(root: Path, *, per_batch: int = 8, n_test: int = 10,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Six batch files as the real ones: protocol-2 pickles of dicts with bytes keys."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    datas, labels = [], []
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        lbls = [int(v) for v in rng.integers(0, 10, n)]
        batch = {
            b"batch_label": f"{name} of 5".encode(),
            b"labels": lbls,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        }
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
        datas.append(data)
        labels.append(np.asarray(lbls))
    return {
        "train_x": np.concatenate(datas[:5]), "train_y": np.concatenate(labels[:5]),
        "test_x": datas[5], "test_y": labels[5],
    }


def recombine_train(d: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole training split, put back together from train and val in original order."""
    n = len(d.train_y) + len(d.val_y)
    train_idx, val_idx = validation_split(n, len(d.val_y))
    x = torch.empty((n, *d.input_shape))
    y = torch.empty(n, dtype=torch.int64)
    x[train_idx], y[train_idx] = d.train_x, d.train_y
    x[val_idx], y[val_idx] = d.val_x, d.val_y
    return x, y


def assert_well_formed(d: Dataset, name: str, n_train: int, n_val: int, n_test: int) -> None:
    spec = DATASETS[name]
    assert d.name == name
    assert d.input_shape == spec.input_shape
    assert d.num_classes == spec.num_classes == 10
    assert d.train_x.shape == (n_train, *spec.input_shape)
    assert d.val_x.shape == (n_val, *spec.input_shape)
    assert d.test_x.shape == (n_test, *spec.input_shape)
    for x in (d.train_x, d.val_x, d.test_x):
        assert x.dtype == torch.float32
        assert torch.isfinite(x).all()
    for y, n in ((d.train_y, n_train), (d.val_y, n_val), (d.test_y, n_test)):
        assert y.dtype == torch.int64 and y.shape == (n,)
        assert int(y.min()) >= 0 and int(y.max()) < d.num_classes


# ---------------------------------------------------------------------------------------------
# registry, names, val_size


def test_registry_names_and_specs() -> None:
    assert list(DATASETS) == ["mnist1d", "digits", "mnist", "fashion-mnist", "cifar10"]
    assert DATASETS["mnist1d"].input_shape == (40,)
    assert DATASETS["digits"].input_shape == (1, 8, 8)
    assert DATASETS["mnist"].input_shape == DATASETS["fashion-mnist"].input_shape == (1, 28, 28)
    assert DATASETS["cifar10"].input_shape == (3, 32, 32)
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.description and "\n" not in spec.description


def test_unknown_name_lists_allowed(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("imagenet", val_size=10, data_dir=tmp_path)
    for name in DATASETS:
        assert name in str(err.value)
    assert "imagenet" in str(err.value)


@pytest.mark.parametrize("val_size", [-5, 1437, 5000])
def test_val_size_out_of_range(tmp_path: Path, val_size: int) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("digits", val_size=val_size, data_dir=tmp_path)
    message = str(err.value)
    assert str(val_size) in message
    assert "0" in message and ("1436" in message or "0 (no hold-out)" in message)


def test_val_size_zero_holds_nothing_out(tmp_path: Path) -> None:
    data = load_dataset("digits", val_size=0, data_dir=tmp_path)
    assert len(data.val_x) == len(data.val_y) == 0 and len(data.train_x) == 1437


def test_val_size_upper_bound_names_range(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"between 0 and 1436"):
        load_dataset("digits", val_size=1437, data_dir=tmp_path)


@pytest.mark.parametrize("val_size", ["10", 10.0, True])
def test_val_size_must_be_int(tmp_path: Path, val_size: object) -> None:
    with pytest.raises(DatasetError, match="val_size"):
        load_dataset("digits", val_size=val_size, data_dir=tmp_path)  # type: ignore[arg-type]


def test_validation_split_fixed_and_disjoint() -> None:
    train_a, val_a = validation_split(100, 30)
    train_b, val_b = validation_split(100, 30)
    assert np.array_equal(train_a, train_b) and np.array_equal(val_a, val_b)
    assert len(val_a) == 30 and len(train_a) == 70
    assert not set(train_a) & set(val_a)
    assert sorted(set(train_a) | set(val_a)) == list(range(100))
    assert set(validation_split(100, 10)[1]) <= set(val_a)  # smaller val sets nest
    assert not np.array_equal(val_a, np.arange(30))  # actually shuffled


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LTH_TUI_DATA_DIR", str(tmp_path / "x"))
    assert default_data_dir() == tmp_path / "x"
    monkeypatch.delenv("LTH_TUI_DATA_DIR")
    assert default_data_dir() == Path.home() / ".local" / "share" / "lth-tui" / "data"


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_split_and_determinism(tmp_path: Path) -> None:
    a = load_dataset("digits", val_size=300, data_dir=tmp_path)
    assert_well_formed(a, "digits", 1437 - 300, 300, 360)
    b = load_dataset("digits", val_size=300, data_dir=tmp_path)
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    c = load_dataset("digits", val_size=100, data_dir=tmp_path)
    assert torch.equal(a.test_x, c.test_x) and torch.equal(a.test_y, c.test_y)
    # train + val are the same training split whatever val_size is
    xa, ya = recombine_train(a)
    xc, yc = recombine_train(c)
    assert torch.equal(xa, xc) and torch.equal(ya, yc)
    # normalised with the training split's statistics; test split stratified
    assert abs(float(xa.mean())) < 1e-4 and abs(float(xa.std()) - 1) < 1e-3
    assert torch.bincount(a.test_y, minlength=10).min() >= 35
    assert a.augment is None


def test_digits_augment_flag_leaves_none(tmp_path: Path) -> None:
    assert load_dataset("digits", val_size=10, data_dir=tmp_path, augment=True).augment is None


def test_dataset_to_returns_new_dataset(tmp_path: Path) -> None:
    d = load_dataset("digits", val_size=10, data_dir=tmp_path)
    moved = d.to("cpu")
    assert moved is not d
    assert torch.equal(moved.train_x, d.train_x) and moved.train_x.device.type == "cpu"
    assert moved.input_shape == d.input_shape and moved.num_classes == d.num_classes
    assert "digits" in repr(d) and len(repr(d)) < 300


# ---------------------------------------------------------------------------------------------
# mnist1d


MNIST1D_SAMPLES = 1000  # the default is 5000; a fifth keeps the real generator under a second


def test_mnist1d_default_args_give_4000_1000_by_40() -> None:
    args = dataset_generated.mnist1d_args()
    assert "url" not in args  # the download path is never used
    assert args["num_samples"] * args["train_split"] == 4000
    assert args["num_samples"] * (1 - args["train_split"]) == pytest.approx(1000)
    assert args["final_seq_length"] == 40


@pytest.fixture(scope="module")
def mnist1d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real generation (with fewer samples), shared by the mnist1d tests."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        args = {**dataset_generated.mnist1d_args(), "num_samples": MNIST1D_SAMPLES}
        mp.setattr(dataset_generated, "mnist1d_args", lambda: dict(args))
        load_dataset("mnist1d", val_size=100, data_dir=root)
    return root


@pytest.fixture
def small_mnist1d(mnist1d_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    args = {**dataset_generated.mnist1d_args(), "num_samples": MNIST1D_SAMPLES}
    monkeypatch.setattr(dataset_generated, "mnist1d_args", lambda: dict(args))
    return mnist1d_dir


def test_mnist1d_shapes_and_split(small_mnist1d: Path) -> None:
    a = load_dataset("mnist1d", val_size=100, data_dir=small_mnist1d)
    assert_well_formed(a, "mnist1d", 700, 100, 200)
    b = load_dataset("mnist1d", val_size=200, data_dir=small_mnist1d)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    xa, ya = recombine_train(a)
    xb, yb = recombine_train(b)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert abs(float(xa.mean())) < 1e-4 and abs(float(xa.std()) - 1) < 1e-3
    assert torch.bincount(ya, minlength=10).min() > 50


def test_mnist1d_second_load_reads_npz_cache(
    small_mnist1d: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mnist1d.data

    caches = list((small_mnist1d / "mnist1d").glob("*.npz"))
    assert len(caches) == 1
    with np.load(caches[0], allow_pickle=False) as npz:  # plain arrays, no pickle inside
        assert npz["x"].shape == (800, 40) and npz["x_test"].shape == (200, 40)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("make_dataset called although the cache exists")

    monkeypatch.setattr(mnist1d.data, "make_dataset", refuse)
    d = load_dataset("mnist1d", val_size=100, data_dir=small_mnist1d)
    assert d.train_x.shape == (700, 40)


def fake_make_dataset(calls: list[int]):
    """A quick stand-in generator that, like the real one, reseeds the global RNGs."""

    def make(args: object) -> dict[str, np.ndarray]:
        calls.append(1)
        np.random.seed(42)
        rng = np.random.default_rng(1)
        return {"x": rng.normal(size=(100, 40)), "y": rng.integers(0, 10, 100),
                "x_test": rng.normal(size=(30, 40)), "y_test": rng.integers(0, 10, 30)}

    return make


def test_mnist1d_keeps_global_rng_and_rebuilds_bad_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mnist1d.data

    calls: list[int] = []
    monkeypatch.setattr(mnist1d.data, "make_dataset", fake_make_dataset(calls))
    np.random.seed(123)
    expected = np.random.get_state()[1].copy()
    np.random.seed(123)
    d = load_dataset("mnist1d", val_size=10, data_dir=tmp_path)
    assert np.array_equal(np.random.get_state()[1], expected)
    assert d.train_x.shape == (90, 40) and d.test_x.shape == (30, 40) and calls == [1]

    cache = next((tmp_path / "mnist1d").glob("*.npz"))
    cache.write_bytes(b"not a zip file")
    load_dataset("mnist1d", val_size=10, data_dir=tmp_path)
    assert calls == [1, 1]
    load_dataset("mnist1d", val_size=10, data_dir=tmp_path)
    assert calls == [1, 1]  # the rebuilt cache is read again


# ---------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST

MNIST_LIKE = [("mnist", "MNIST", 0.1307, 0.3081), ("fashion-mnist", "FashionMNIST", 0.2860, 0.3530)]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("name,folder,mean,std", MNIST_LIKE)
def test_mnist_like_round_trip(tmp_path: Path, name: str, folder: str, mean: float,
                               std: float, gz: bool) -> None:
    arrays = write_mnist(tmp_path, folder, gz=gz)
    d = load_dataset(name, val_size=10, data_dir=tmp_path)
    assert_well_formed(d, name, 40, 10, 20)
    test_pixels = (d.test_x * std + mean) * 255
    expected = torch.from_numpy(arrays["test_x"]).float()[:, None]
    assert torch.allclose(test_pixels, expected, atol=1e-3)
    assert torch.equal(d.test_y, torch.from_numpy(arrays["test_y"]).long())
    x, y = recombine_train(d)
    assert torch.allclose((x * std + mean) * 255,
                          torch.from_numpy(arrays["train_x"]).float()[:, None], atol=1e-3)
    assert torch.equal(y, torch.from_numpy(arrays["train_y"]).long())


def test_mnist_bad_magic_names_file(tmp_path: Path) -> None:
    arrays = write_mnist(tmp_path, "MNIST")
    bad = write_idx(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte", arrays["train_x"], 2049)
    with pytest.raises(DatasetError, match="magic") as err:
        load_dataset("mnist", val_size=10, data_dir=tmp_path)
    assert str(bad) in str(err.value)


def test_mnist_truncated_file_names_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated") as err:
        load_dataset("mnist", val_size=10, data_dir=tmp_path)
    assert str(path) in str(err.value)


def test_mnist_truncated_gzip_names_file(tmp_path: Path) -> None:
    write_mnist(tmp_path, "FashionMNIST", gz=True)
    path = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DatasetError) as err:
        load_dataset("fashion-mnist", val_size=10, data_dir=tmp_path)
    assert str(path) in str(err.value)


def test_mnist_mismatched_counts(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    write_idx(tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte", np.zeros(49, np.uint8), 2049)
    with pytest.raises(DatasetError, match="do not belong together"):
        load_dataset("mnist", val_size=10, data_dir=tmp_path)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_missing_files_explains_fix(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset(name, val_size=10, data_dir=tmp_path)
    message = str(err.value)
    assert "--data-dir" in message and "--download" in message
    assert str(tmp_path / folder / "raw") in message
    assert "train-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message


def test_mnist_one_missing_file_is_named(tmp_path: Path) -> None:
    write_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match=r"missing: t10k-labels-idx1-ubyte\."):
        load_dataset("mnist", val_size=10, data_dir=tmp_path)


def install_fake_torchvision(monkeypatch: pytest.MonkeyPatch, **classes: type) -> None:
    """Stand-in `torchvision.datasets` so the download path runs offline and fast."""
    fake_datasets = types.SimpleNamespace(**classes)
    fake_tv = types.ModuleType("torchvision")
    fake_tv.datasets = fake_datasets  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchvision", fake_tv)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake_datasets)


def test_mnist_download_calls_torchvision_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, bool, bool]] = []

    class FakeMNIST:
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            calls.append((root, train, download))
            write_mnist(Path(root), "MNIST", gz=True)

    install_fake_torchvision(monkeypatch, MNIST=FakeMNIST)
    d = load_dataset("mnist", val_size=5, data_dir=tmp_path, download=True)
    assert calls == [(str(tmp_path), True, True)]
    assert d.train_x.shape == (45, 1, 28, 28)
    load_dataset("mnist", val_size=5, data_dir=tmp_path, download=True)
    assert len(calls) == 1  # files present: no second download


def test_download_failure_is_dataset_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    install_fake_torchvision(monkeypatch, FashionMNIST=Offline)
    with pytest.raises(DatasetError, match="downloading Fashion-MNIST"):
        load_dataset("fashion-mnist", val_size=5, data_dir=tmp_path, download=True)


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def test_cifar10_round_trip(tmp_path: Path) -> None:
    arrays = write_cifar(tmp_path)
    d = load_dataset("cifar10", val_size=5, data_dir=tmp_path)
    assert_well_formed(d, "cifar10", 35, 5, 10)
    assert d.augment is None
    pixels = (d.test_x * CIFAR_STD + CIFAR_MEAN) * 255
    expected = torch.from_numpy(arrays["test_x"]).float().view(-1, 3, 32, 32)
    assert torch.allclose(pixels, expected, atol=1e-3)
    assert torch.equal(d.test_y, torch.from_numpy(arrays["test_y"]).long())
    x, y = recombine_train(d)
    expected = torch.from_numpy(arrays["train_x"]).float().view(-1, 3, 32, 32)
    assert torch.allclose((x * CIFAR_STD + CIFAR_MEAN) * 255, expected, atol=1e-3)
    assert torch.equal(y, torch.from_numpy(arrays["train_y"]).long())


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_cifar10_refuses_code_in_pickle(tmp_path: Path, payload: str) -> None:
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    evil: object = _Evil(marker) if payload == "os.system" else _EvalCall(marker)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_3").open("wb") as f:
        pickle.dump({b"data": evil, b"labels": []}, f, protocol=2)
    with pytest.raises(DatasetError, match="data_batch_3") as err:
        load_dataset("cifar10", val_size=5, data_dir=tmp_path)
    assert "not allowed" in str(err.value)
    assert not marker.exists()


class _EvalCall:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, (f"open({str(self.marker)!r}, 'w')",))


def test_cifar10_corrupt_and_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", val_size=5, data_dir=tmp_path)
    message = str(err.value)
    assert "--data-dir" in message and "--download" in message and "cifar-10-batches-py" in message

    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match="test_batch"):
        load_dataset("cifar10", val_size=5, data_dir=tmp_path)


def test_cifar10_wrong_data_shape(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("wb") as f:
        pickle.dump({b"data": np.zeros((8, 100), np.uint8), b"labels": [0] * 8}, f, protocol=2)
    with pytest.raises(DatasetError, match=r"data_batch_1.*3072"):
        load_dataset("cifar10", val_size=5, data_dir=tmp_path)


def test_cifar10_download_calls_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    class FakeCIFAR10:
        def __init__(self, root: str, train: bool = True, download: bool = False) -> None:
            assert download
            calls.append(root)
            write_cifar(Path(root))

    install_fake_torchvision(monkeypatch, CIFAR10=FakeCIFAR10)
    d = load_dataset("cifar10", val_size=5, data_dir=tmp_path, download=True)
    assert calls == [str(tmp_path)] and len(d.train_y) == 35


# ---------------------------------------------------------------------------------------------
# augmentation


def test_cifar10_augment_shape_and_determinism(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    d = load_dataset("cifar10", val_size=5, data_dir=tmp_path, augment=True)
    assert isinstance(d.augment, RandomCropFlip) and d.augment.padding == 4
    batch = d.train_x[:16]
    out1 = d.augment(batch, torch.Generator().manual_seed(7))
    out2 = d.augment(batch, torch.Generator().manual_seed(7))
    out3 = d.augment(batch, torch.Generator().manual_seed(8))
    assert out1.shape == batch.shape and out1.dtype == batch.dtype
    assert torch.equal(out1, out2)
    assert not torch.equal(out1, out3)
    assert not torch.equal(out1, batch)
    # padding is black in normalised units, as when padding raw pixels with zeros
    black = (-CIFAR_MEAN / CIFAR_STD).view(3)
    padded_with_black = RandomCropFlip(4, fill=tuple(black.tolist()))
    assert d.augment.fill == pytest.approx(padded_with_black.fill)
    assert d.to("cpu").augment is d.augment


def all_crops_and_flips(image: torch.Tensor, padding: int, fill: float) -> list[torch.Tensor]:
    """Every output RandomCrop(padding) + RandomHorizontalFlip can give, built by slicing."""
    _, h, w = image.shape
    padded = F.pad(image, (padding,) * 4, value=fill)
    crops = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            crops += [crop, crop.flip(-1)]
    return crops


def test_augment_outputs_are_exactly_the_crops_and_flips() -> None:
    image = torch.arange(1.0, 7.0).view(1, 2, 3)  # 1 channel, 2×3, all values distinct
    candidates = all_crops_and_flips(image, padding=1, fill=-1.0)
    assert len({tuple(c.flatten().tolist()) for c in candidates}) == 18
    batch = image.expand(400, 1, 2, 3).contiguous()
    out = RandomCropFlip(padding=1, fill=(-1.0,))(batch, torch.Generator().manual_seed(0))
    seen = set()
    for o in out:
        match = [i for i, c in enumerate(candidates) if torch.equal(o, c)]
        assert match, f"not a crop/flip of the input: {o.tolist()}"
        seen.add(tuple(o.flatten().tolist()))
    assert len(seen) == 18  # every offset and both flips occur


def test_augment_hand_made_example() -> None:
    image = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])  # 1×2×2
    out = RandomCropFlip(padding=0)(image.expand(64, 1, 2, 2), torch.Generator().manual_seed(0))
    flipped = torch.tensor([[[2.0, 1.0], [4.0, 3.0]]])
    is_same = torch.tensor([torch.equal(o, image) for o in out])
    is_flipped = torch.tensor([torch.equal(o, flipped) for o in out])
    assert bool((is_same | is_flipped).all()) and is_same.any() and is_flipped.any()

    # a crop shifted by one: with fill 0, offset (dy=0, dx=0) of padding 1 puts the image
    # in the bottom-right corner; check one such output appears, per channel
    two_channels = torch.stack([image[0], -image[0]])  # 2×2×2
    outs = RandomCropFlip(padding=1)(two_channels.expand(200, 2, 2, 2),
                                     torch.Generator().manual_seed(1))
    corner = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, -1.0]]])
    assert any(torch.equal(o, corner) for o in outs)
    assert all(torch.equal(o[1], -o[0]) for o in outs)  # channels move together


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_augment_same_on_cuda_as_on_cpu() -> None:
    batch = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    aug = RandomCropFlip(4, fill=(0.1, 0.2, 0.3))
    on_cpu = aug(batch, torch.Generator().manual_seed(5))
    on_gpu = aug(batch.cuda(), torch.Generator().manual_seed(5))
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu.cpu(), on_cpu)
