"""Mask overlap (Jaccard) against hand computations and over the masks of stored runs."""

from __future__ import annotations

import pytest
import torch
from safetensors.numpy import load_file as load_np

from engine.config import from_dict
from engine.datasets import load_dataset
from engine.overlap import between_runs, between_trials, consecutive_rounds, jaccard, run_overlaps
from engine.runner import execute
from engine.store import create_run


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_jaccard_by_hand():
    a = {"x": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool),
         "y": torch.tensor([1, 0, 1], dtype=torch.bool)}
    b = {"x": torch.tensor([[1, 0, 1, 0], [1, 0, 0, 1]], dtype=torch.bool),
         "y": torch.tensor([0, 1, 0], dtype=torch.bool)}
    result = jaccard(a, b)
    # x: intersection {0, 4} = 2, union {0, 1, 2, 4, 7} = 5; y: intersection 0, union 3
    assert result["layers"] == {"x": pytest.approx(2 / 5), "y": 0.0}
    assert result["all"] == pytest.approx(2 / 8)
    assert (result["kept_a"], result["kept_b"], result["total"]) == (5, 5, 11)
    p = q = 5 / 11
    assert result["chance"] == pytest.approx(p * q / (p + q - p * q))
    assert jaccard(a, a)["all"] == 1.0
    empty = {"x": torch.zeros(3, dtype=torch.bool)}
    assert jaccard(empty, empty)["all"] == 1.0 and jaccard(empty, empty)["layers"]["x"] == 1.0
    with pytest.raises(ValueError):
        jaccard({"x": torch.ones(3, dtype=torch.bool)}, {"x": torch.ones(4, dtype=torch.bool)})
    with pytest.raises(ValueError):
        jaccard({"x": torch.ones(3)}, {"z": torch.ones(3)})


def test_chance_level_matches_random_masks():
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.rand(200_000, generator=g) < 0.3}
    b = {"w": torch.rand(200_000, generator=g) < 0.6}
    result = jaccard(a, b)
    assert result["all"] == pytest.approx(result["chance"], abs=0.005)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data = load_dataset("digits", val_size=300)
    root = tmp_path_factory.mktemp("runs")
    dirs = []
    for criterion in ("large_final", "random"):
        config = from_dict({"name": criterion, "description": "t", "device": "cpu", "trials": 2,
                            "data": {"name": "digits", "val_size": 300}, "model": {"name": "mlp", "hidden": [32, 16]},
                            "train": {"iterations": 20, "eval_every": 20, "batch_size": 60, "lr": 3e-3},
                            "prune": {"rounds": 2, "criterion": criterion, "rate": {"fc": 0.5, "output": 0.2}}})
        run_dir = create_run(config, root, preset=criterion)
        assert execute(run_dir, data=data) == "done"
        dirs.append(run_dir)
    return dirs


def _mask_np(run_dir, t, r):
    masks = load_np(str(run_dir / f"trial-{t}" / f"round-{r}" / "mask.safetensors"))
    return {k: v.astype(bool) for k, v in masks.items()}


def _np_jaccard(a, b):
    inter = sum(int((a[k] & b[k]).sum()) for k in a)
    union = sum(int((a[k] | b[k]).sum()) for k in a)
    return inter / union


def test_overlaps_inside_a_run(runs):
    run_dir = runs[0]
    steps = consecutive_rounds(run_dir, 0)
    assert [s["rounds"] for s in steps] == [[0, 1], [1, 2]]
    for step in steps:  # IMP masks are nested: the overlap is the density ratio
        assert step["all"] == pytest.approx(step["kept_b"] / step["kept_a"])
        r0, r1 = step["rounds"]
        assert step["all"] == pytest.approx(_np_jaccard(_mask_np(run_dir, 0, r0), _mask_np(run_dir, 0, r1)))
    across = between_trials(run_dir, 2)
    assert [p["trials"] for p in across["pairs"]] == [[0, 1]]
    assert across["mean"] == pytest.approx(_np_jaccard(_mask_np(run_dir, 0, 2), _mask_np(run_dir, 1, 2)))
    everything = run_overlaps(run_dir)
    assert set(everything["consecutive"]) == {"0", "1"} and set(everything["between_trials"]) == {"0", "1", "2"}
    assert everything["between_trials"]["0"]["mean"] == 1.0  # round 0 is dense in both trials


def test_overlap_between_runs(runs, tmp_path):
    result = between_runs([*runs, tmp_path / "missing"], 2, trial=1)
    matrix = result["matrix"]
    assert result["runs"][:2] == [runs[0].name, runs[1].name]
    assert matrix[0][0] == matrix[1][1] == 1.0 and matrix[0][1] == matrix[1][0]
    assert matrix[0][1] == pytest.approx(_np_jaccard(_mask_np(runs[0], 1, 2), _mask_np(runs[1], 1, 2)))
    assert matrix[2] == [None, None, None] and result["weights_remaining"][2] is None
    assert 0 < result["weights_remaining"][0] < 0.5
