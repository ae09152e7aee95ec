"""The run store: the only channel between the engine and anything that watches it.

A run directory holds config.toml, status.json, events.jsonl, summary.json and safetensors
files (see design.md, "Run store"). JSON files are replaced atomically (temp file + rename)
so a reader never sees half a file, events are appended and flushed one line at a time, and
nothing is ever loaded with pickle, so a run dir copied from someone else cannot run code.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from engine.config import ConfigError, ExperimentConfig, from_dict, read_toml, to_toml

STATES = ("queued", "running", "done", "failed", "cancelled")


class StoreError(RuntimeError):
    """A run dir that cannot be read: missing or damaged files. The message says which."""


def default_runs_dir() -> Path:
    """$LTH_TUI_RUNS_DIR, else ~/.local/share/lth-tui/runs."""
    env = os.environ.get("LTH_TUI_RUNS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "lth-tui" / "runs"


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text.strip().lower())
    return "-".join(part for part in cleaned.split("-") if part)[:40] or "run"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write-then-rename, so readers see the old file or the new one, never a torn one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, allow_nan=False, default=_json_default)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_json(path: Path) -> Any:
    """Reads a JSON file, turning absence or damage into a StoreError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path.name} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path.name} is damaged: {exc}") from None


def create_run(config: ExperimentConfig, runs_dir: Path | None = None, *, preset: str | None = None,
               group: str | None = None, queued_by: int | None = None) -> Path:
    """Makes a fresh run dir with its config.toml and a status; nothing runs yet.

    The id is readable and content-addressed: time, preset name and 6 hex of the config hash.
    `queued_by` is the pid of a sweep that will start the run later: until then it is
    "queued", not a run whose runner died, so nobody resumes it behind the sweep's back.
    """
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    runs_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{_slug(preset or config.name)}-{config.config_hash()[:6]}"
    run_dir = runs_dir / base
    suffix = 1
    while True:
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            suffix += 1
            run_dir = runs_dir / f"{base}-{suffix}"
    (run_dir / "config.toml").write_text(to_toml(config), encoding="utf-8")
    status = {"state": "queued" if queued_by else "running", "pid": queued_by, "host": socket.gethostname(), "error": None,
              "created": time.time(), "updated": time.time(), "preset": preset or config.name}
    if group:
        status["group"] = group
    write_json_atomic(run_dir / "status.json", status)
    return run_dir


def read_config(run_dir: Path) -> ExperimentConfig:
    """The run's resolved config, validated again (a copied run dir is untrusted input)."""
    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        raise StoreError("config.toml is missing")
    try:
        return from_dict(read_toml(path), str(path))
    except ConfigError as exc:
        raise StoreError(f"config.toml is damaged: {exc}") from None


def read_status(run_dir: Path) -> dict[str, Any]:
    status = read_json(Path(run_dir) / "status.json")
    if not isinstance(status, dict) or status.get("state") not in STATES:
        raise StoreError(f"status.json is damaged: state must be one of {', '.join(STATES)}")
    return status


def read_summary(run_dir: Path) -> dict[str, Any]:
    summary = read_json(Path(run_dir) / "summary.json")
    if not isinstance(summary, dict) or not isinstance(summary.get("trials"), list):
        raise StoreError("summary.json is damaged: no trials list")
    return summary


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events appended since byte `offset`, and the offset to continue from.

    A last line without its newline is still being written: it is left for the next call.
    Damaged lines are skipped rather than stopping the reader.
    """
    path = Path(run_dir) / "events.jsonl"
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        try:
            event = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end + 1


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as CPU tensors (safetensors cannot execute code, unlike pickle)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path.name} is missing")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged headers
        raise StoreError(f"{path.name} is damaged: {exc}") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write; tensors are copied to contiguous CPU memory first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    os.replace(tmp, path)


CHECKPOINT_FILES = ("checkpoint.safetensors", "checkpoint.json")


def save_checkpoint(directory: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """A mid-round checkpoint as one atomic file: `meta` (step, evals, ...) travels inside the
    safetensors header, so a kill at any moment leaves the old checkpoint or the new one, never
    new tensors beside an old step. checkpoint.json repeats `meta` for people and for "is
    there a checkpoint" checks; it is not read back."""
    directory = Path(directory)
    text = json.dumps(meta, allow_nan=False, default=_json_default)
    save_tensors(directory / CHECKPOINT_FILES[0], tensors, metadata={"checkpoint": text})
    write_json_atomic(directory / CHECKPOINT_FILES[1], meta)


def checkpoint_meta(directory: Path) -> dict[str, Any] | None:
    """The meta of the checkpoint in `directory` (header only, no tensors), or None if none."""
    path = Path(directory) / CHECKPOINT_FILES[0]
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), "pt") as fh:
            text = (fh.metadata() or {}).get("checkpoint")
    except Exception as exc:  # safetensors raises several types for damaged headers
        raise StoreError(f"{path.name} is damaged: {exc}") from None
    if text is None:  # written before meta moved into the file: the JSON beside it is all there is
        return read_json(Path(directory) / CHECKPOINT_FILES[1])
    return json.loads(text)


def load_checkpoint(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(tensors, meta) of the checkpoint in `directory`, or None when there is none."""
    meta = checkpoint_meta(directory)
    if meta is None:
        return None
    return load_tensors(Path(directory) / CHECKPOINT_FILES[0]), meta


def clear_checkpoint(directory: Path) -> None:
    for name in CHECKPOINT_FILES:
        (Path(directory) / name).unlink(missing_ok=True)


class RunWriter:
    """What the runner uses to write one run dir."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self._events = open(self.dir / "events.jsonl", "a", encoding="utf-8")

    def close(self) -> None:
        self._events.close()

    def event(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "time": time.time(), **fields}
        self._events.write(json.dumps(record, allow_nan=False, default=_json_default) + "\n")
        self._events.flush()
        return record

    def status(self, **fields: Any) -> None:
        try:
            current = read_json(self.dir / "status.json")
        except StoreError:
            current = {}
        current.update(fields, updated=time.time())
        write_json_atomic(self.dir / "status.json", current)

    def summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.dir / "summary.json", summary)

    def trial_dir(self, trial: int) -> Path:
        return self.dir / f"trial-{trial}"

    def round_dir(self, trial: int, round_: int) -> Path:
        return self.trial_dir(trial) / f"round-{round_}"


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_alive(status: dict[str, Any]) -> bool:
    """Whether the process a status names is there: its runner, or while queued, its sweep.

    A process on another host cannot be checked from here and counts as alive.
    """
    return status.get("host") != socket.gethostname() or pid_alive(status.get("pid"))


@dataclass
class RunInfo:
    """One line of the runs list; `state` adds "interrupted" and "damaged" to the stored ones.

    A run whose runner (or, while queued, whose sweep) is gone from this host is "interrupted".
    """

    path: Path
    run_id: str
    state: str
    preset: str = ""
    criterion: str = ""
    group: str = ""
    best_accuracy: float | None = None
    best_weights_remaining: float | None = None
    rounds_done: int = 0
    error: str = ""
    created: float = 0.0


def run_info(run_dir: Path) -> RunInfo:
    """Reads what the runs list shows; any damage becomes state "damaged" with the reason."""
    run_dir = Path(run_dir)
    info = RunInfo(path=run_dir, run_id=run_dir.name, state="damaged")
    try:
        status = read_status(run_dir)
        config = read_config(run_dir)
    except StoreError as exc:
        info.error = str(exc)
        return info
    info.state = status["state"]
    info.preset = str(status.get("preset") or config.name)
    # Mask-training runs have no pruning criterion: show what they are instead.
    info.criterion = config.prune.criterion if config.experiment == "imp" else config.experiment
    info.group = str(status.get("group") or "")
    info.error = str(status.get("error") or "")
    info.created = float(status.get("created") or 0.0)
    if info.state in ("running", "queued") and not holder_alive(status):
        info.state = "interrupted"
    if (run_dir / "summary.json").exists():
        try:
            summary = read_summary(run_dir)
        except StoreError as exc:
            info.state, info.error = "damaged", str(exc)
            return info
        best = best_point(summary)
        if best:
            info.best_accuracy, info.best_weights_remaining = best
        info.rounds_done = sum(len(t.get("rounds", [])) for t in summary["trials"])
    return info


def best_point(summary: dict[str, Any]) -> tuple[float, float] | None:
    """(best mean test accuracy at early stop, its weights remaining) over the curve."""
    points = [p for p in summary.get("curve", []) if p.get("test_accuracy_mean") is not None]
    if not points:
        return None
    best = max(points, key=lambda p: (p["test_accuracy_mean"], -p["weights_remaining"]))
    return best["test_accuracy_mean"], best["weights_remaining"]


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """Every run dir under runs_dir, newest first; damaged ones included, never raising."""
    runs_dir = Path(runs_dir) if runs_dir else default_runs_dir()
    if not runs_dir.is_dir():
        return []
    infos = [run_info(p) for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and _looks_like_run(p)]
    return sorted(infos, key=lambda i: i.run_id, reverse=True)


def _looks_like_run(path: Path) -> bool:
    return any((path / name).exists() for name in ("config.toml", "status.json", "events.jsonl", "summary.json"))


def iter_round_dirs(run_dir: Path, trial: int) -> Iterator[tuple[int, Path]]:
    """(round, dir) for the rounds present on disk, in order."""
    base = Path(run_dir) / f"trial-{trial}"
    found = []
    if base.is_dir():
        for p in base.iterdir():
            if p.name.startswith("round-") and p.name[6:].isdigit():
                found.append((int(p.name[6:]), p))
    yield from sorted(found)
