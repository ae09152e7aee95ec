"""`lth-tui export --format ticket` and `engine.load_ticket`: the round's pruned network as one file."""

from __future__ import annotations

import json
import struct
import tomllib
from pathlib import Path

import pytest
import torch
from conftest import FAST_PRESET, merged

from engine.config import from_dict
from engine.models import build_model
from engine.runner import execute
from engine.store import create_run, load_tensors
from lth_tui.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A ResNet-20 run (BatchNorm buffers) whose pruned weights stay frozen at θ0 (so its final
    weights are not 0 where the mask is), and a plain MLP run with two trials."""
    store = tmp_path_factory.mktemp("ticket-runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = tomllib.loads(FAST_PRESET)
        resnet = merged(base, model={"name": "resnet20"}, train={"iterations": 10, "eval_every": 10},
                        prune={"rounds": 1, "mask0": "freeze_init", "scope": "global",
                               "rate": {"conv": 0.3, "fc": 0.3, "output": 0.3}})
        mlp = merged(base, trials=2)
        out = {"resnet": create_run(from_dict(resnet), store, preset="ticket-resnet"),
               "mlp": create_run(from_dict(mlp), store, preset="ticket-mlp")}
        for run_dir in out.values():
            assert execute(run_dir) == "done"
    finally:
        torch.set_num_threads(threads)
    return out


def _masked_network(run_dir: Path, trial: int, round_: int, file: str) -> torch.nn.Module:
    """The network the run store describes: the stored weights times the stored mask."""
    from engine.store import read_config

    config = read_config(run_dir)
    shape = (1, 8, 8)  # digits
    model = build_model(config.model.name, input_shape=shape, num_classes=10, hidden=config.model.hidden,
                        init=config.model.init, generator=torch.Generator().manual_seed(1))
    state = load_tensors(run_dir / f"trial-{trial}" / f"round-{round_}" / file)
    mask = load_tensors(run_dir / f"trial-{trial}" / f"round-{round_}" / "mask.safetensors")
    model.load_state_dict({k: v * mask[k] if k in mask else v for k, v in state.items()})
    return model.eval()


def test_ticket_loads_as_the_masked_network_with_every_buffer(runs, tmp_path, capsys):
    import engine

    out = tmp_path / "ticket.safetensors"
    assert main(["export", str(runs["resnet"]), "--format", "ticket", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    module = engine.load_ticket(out)
    stored_final = load_tensors(runs["resnet"] / "trial-0" / "round-1" / "final.safetensors")
    mask = load_tensors(runs["resnet"] / "trial-0" / "round-1" / "mask.safetensors")
    state = module.state_dict()
    assert set(state) == set(stored_final)  # every parameter and buffer
    assert any("running_mean" in k for k in state) and any("num_batches_tracked" in k for k in state)
    frozen_nonzero = 0
    for name, m in mask.items():
        assert torch.equal(state[name][~m.bool()], torch.zeros(int((~m.bool()).sum())))  # exactly 0
        frozen_nonzero += int((stored_final[name][~m.bool()] != 0).sum())
    assert frozen_nonzero > 0  # freeze_init kept them at θ0: the ticket really zeroed them
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(module(x), _masked_network(runs["resnet"], 0, 1, "final.safetensors")(x))
    assert not module.training


def test_ticket_file_holds_masks_and_config_for_plain_pytorch(runs, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    out = tmp_path / "t.safetensors"
    assert main(["export", str(runs["mlp"]), "--format", "ticket", "--trial", "1", "--round", "1",
                 "--weights", "init", "-o", str(out)]) == 0
    with safe_open(str(out), framework="pt") as fh:
        meta = fh.metadata()
    model = json.loads(meta["model"])
    source = json.loads(meta["source"])
    assert model == {"name": "mlp", "hidden": [32], "init": "glorot-normal", "input_shape": [1, 8, 8],
                     "num_classes": 10}
    assert (source["trial"], source["round"], source["weights"]) == (1, 1, "init")
    tensors = load_file(str(out))
    start = load_tensors(runs["mlp"] / "trial-1" / "round-1" / "start.safetensors")
    mask = load_tensors(runs["mlp"] / "trial-1" / "round-1" / "mask.safetensors")
    assert set(tensors) == set(start) | {f"{k}_mask" for k in mask}
    for name, m in mask.items():
        assert torch.equal(tensors[f"{name}_mask"], m.bool())
        assert torch.equal(tensors[name], start[name] * m)
    kept = sum(int(m.sum()) for m in mask.values())
    assert source["weights_remaining"] == pytest.approx(kept / sum(m.numel() for m in mask.values()))
    # The README's plain-PyTorch recipe: build the net, load the weights, keep the masks on.
    net = build_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[32], generator=torch.Generator())
    net.load_state_dict({k: v for k, v in tensors.items() if not k.endswith("_mask")})
    from torch.nn.utils import prune

    prune.custom_from_mask(net.fc, "weight", tensors["fc.weight_mask"])
    assert torch.equal(net.fc.weight, start["fc.weight"] * mask["fc.weight"])


def test_default_round_is_the_last_and_default_path_in_the_run_dir(runs, capsys):
    import engine

    assert main(["export", str(runs["mlp"]), "--format", "ticket"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == runs["mlp"] / "ticket-trial0-round2-final.safetensors"
    module = engine.load_ticket(path, enforce_masks=True)
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(module(x), _masked_network(runs["mlp"], 0, 2, "final.safetensors")(x))
    assert "fc.weight_mask" in module.state_dict()  # enforce_masks: torch's pruning keeps them at 0
    path.unlink()


@pytest.mark.parametrize("args, message", [
    (["--round", "7"], "rounds available: 0, 1, 2"),
    (["--trial", "5"], "trials 0..1"),
    (["--weights", "best"], "final, init"),
    (["-o", "-"], "standard output"),
])
def test_bad_ticket_requests_exit_2_with_one_line(runs, tmp_path, capsys, args, message):
    before = sorted(p.name for p in runs["mlp"].iterdir())
    assert main(["export", str(runs["mlp"]), "--format", "ticket", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in runs["mlp"].iterdir()) == before


def test_ticket_write_never_follows_a_planted_symlink(runs, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "ticket.safetensors"
    link.symlink_to(victim)
    assert main(["export", str(runs["mlp"]), "--format", "ticket", "-o", str(link)]) == 2
    assert victim.read_text() == "keep me" and link.is_symlink()
    assert "is a symlink" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _rewrite(path: Path, out: Path, *, tensors=None, metadata=None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = dict(fh.metadata())
    data = load_file(str(path))
    if tensors:
        tensors(data)
    if metadata:
        metadata(meta)
    save_file(data, str(out), metadata=meta)
    return out


def test_damaged_tickets_give_a_clear_error(runs, tmp_path):
    from engine.ticket import TicketError, load_ticket

    good = tmp_path / "good.safetensors"
    assert main(["export", str(runs["mlp"]), "--format", "ticket", "-o", str(good)]) == 0
    raw = good.read_bytes()
    cases = {
        "truncated": (lambda p: p.write_bytes(raw[: len(raw) // 2]), "not a readable safetensors file"),
        "garbage": (lambda p: p.write_bytes(b"\x00" * 64), "not a readable safetensors file"),
        "huge header": (lambda p: p.write_bytes(struct.pack("<Q", 1 << 40) + b"{}"), "not a readable safetensors file"),
        "not a ticket": (lambda p: _rewrite(good, p, metadata=lambda m: m.update(format="something")),
                         "not an lth-tui ticket"),
        "bad model json": (lambda p: _rewrite(good, p, metadata=lambda m: m.update(model="{oops")), "not valid JSON"),
        "unknown model": (lambda p: _rewrite(good, p, metadata=lambda m: m.update(model=json.dumps(
            {**json.loads(m["model"]), "name": "transformer"}))), "unknown model 'transformer'"),
        "wrong width": (lambda p: _rewrite(good, p, metadata=lambda m: m.update(model=json.dumps(
            {**json.loads(m["model"]), "hidden": [33]}))), "has shape"),
        "missing mask": (lambda p: _rewrite(good, p, tensors=lambda t: t.pop("fc.weight_mask")),
                         "missing ['fc.weight_mask']"),
        "float mask": (lambda p: _rewrite(good, p,
                                          tensors=lambda t: t.update({"fc.weight_mask": t["fc.weight_mask"].float()})),
                       "must be a bool tensor"),
        "not pruned": (lambda p: _rewrite(good, p, tensors=lambda t: t.update({"fc.weight": t["fc.weight"] + 1})),
                       "is not 0 where its mask is 0"),
        "wrong dtype": (lambda p: _rewrite(good, p, tensors=lambda t: t.update({"fc.bias": t["fc.bias"].double()})),
                        "torch.float64"),
    }
    for name, (make, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.safetensors"
        make(path)
        with pytest.raises(TicketError) as info:
            load_ticket(path)
        assert str(path) in str(info.value) and message in str(info.value), (name, str(info.value))
    with pytest.raises(TicketError, match="no such file"):
        load_ticket(tmp_path / "absent.safetensors")


def test_mask_training_runs_export_final_only(analysis_runs, tmp_path, capsys):
    import engine

    sm = analysis_runs["supermask"]
    out = tmp_path / "sm.safetensors"
    assert main(["export", str(sm), "--format", "ticket", "--weights", "init", "-o", str(out)]) == 2
    assert "no rewind point" in capsys.readouterr().err
    assert main(["export", str(sm), "--format", "ticket", "-o", str(out)]) == 0
    module = engine.load_ticket(out)
    final = load_tensors(sm / "trial-0" / "round-2" / "final.safetensors")
    # effective weights, already 0 where pruned
    assert all(torch.equal(module.state_dict()[k], v) for k, v in final.items())


def test_the_readme_plain_pytorch_recipe_loads_the_ticket(runs, tmp_path, monkeypatch):
    import re

    import engine

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("In plain PyTorch"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'path = "ticket.safetensors"' in code
    out = tmp_path / "ticket.safetensors"
    assert main(["export", str(runs["mlp"]), "--format", "ticket", "-o", str(out)]) == 0
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    net = scope["net"].eval()
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(net(x), engine.load_ticket(out)(x))
    mask = load_tensors(out)["fc.weight_mask"]
    assert hasattr(net.fc, "weight_orig") and torch.equal(net.fc.weight_mask.bool(), mask)  # the masks are enforced
