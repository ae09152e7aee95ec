"""The run store: the only channel between the engine and anything that watches it.

A run directory holds config.toml, status.json, events.jsonl, summary.json and safetensors
files (see design.md, "Run store"). JSON files are replaced atomically (temp file + rename)
so a reader never sees half a file, events are appended and flushed one line at a time, and
nothing is ever loaded with pickle, so a run dir copied from someone else cannot run code.

Reading a run's JSON files never imports torch (`lth-tui runs` and `export` stay instant);
only the tensor readers and writers do, when they are called.
"""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.config import ConfigError, ExperimentConfig, from_dict, read_toml, to_toml
from engine.layout import CHECKPOINT, CHECKPOINT_META, EVALS, GROUP, RESULT, RunLayout, parse_round, parse_trial
from engine.process import liveness, pid_alive
from engine.records import (
    EvalPoint,
    Event,
    Group,
    LmcRecord,
    RoundRecord,
    Status,
    SuccessiveRecord,
    Summary,
)
from engine.schema import (
    SchemaError,
    check_evals,
    check_group,
    check_round,
    check_status,
    check_successive,
    check_summary,
    event_ok,
    find_non_finite,
    lmc_ok,
)

MAX_JSON_BYTES = 256 * 2 ** 20  # a run's JSON files are kilobytes to a few megabytes

if TYPE_CHECKING:
    import torch


class StoreError(RuntimeError):
    """A run dir that cannot be read: missing or damaged files. The message says which."""


class Diverged(RuntimeError):
    """An evaluation came out NaN or infinite: the run ends failed, with the evals before it kept."""


LOSS_KEYS = ("train_loss", "val_loss", "test_loss")


def default_runs_dir() -> Path:
    """$LTH_TUI_RUNS_DIR, else ~/.local/share/lth-tui/runs."""
    env = os.environ.get("LTH_TUI_RUNS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "lth-tui" / "runs"


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text.strip().lower())
    return "-".join(part for part in cleaned.split("-") if part)[:40] or "run"


def temp_path(path: Path) -> Path:
    """A hidden temp file beside `path`, unique per process and thread (see remove_stale_temps)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def open_new(path: Path, mode: str = "w") -> Any:
    """A file that did not exist, opened without following a symlink (O_EXCL | O_NOFOLLOW)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def replace_atomically(path: Path, payload: bytes) -> None:
    """Writes `payload` to a fresh temp file beside `path` (never through a planted link), syncs
    it and renames it over `path`; the temp file is gone whatever fails. Raises OSError."""
    tmp = temp_path(path)
    try:
        with open_new(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_log(path: Path) -> Any:
    """A log file in a run dir opened for appending, never through a planted symlink."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise StoreError(f"{Path(path).name} cannot be opened for writing ({exc.strerror}); is it a symlink?") from None
    return os.fdopen(fd, "ab")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write-then-rename, so readers see the old file or the new one, never a torn one.

    NaN and infinity are refused (ValueError): they are not JSON, and other tools choke on them.
    """
    path = Path(path)
    bad = find_non_finite(data)
    if bad is not None:
        raise Diverged(f"{_where(path)} would hold a non-finite number at {bad}: the training diverged; lower train.lr")
    replace_atomically(path, json.dumps(data, indent=1, allow_nan=False, default=_json_default).encode("utf-8"))


def _json_default(obj: Any) -> Any:
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_bytes(path: Path, limit: int = MAX_JSON_BYTES) -> bytes:
    """A regular file's bytes, never through a symlink nor from a FIFO or device; StoreError otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise StoreError(f"{path.name} is missing") from None
    except OSError as exc:
        if os.path.islink(path):
            raise StoreError(f"{path.name} is a symlink; "
                             "run-store files are never links, so it is not followed") from None
        raise StoreError(f"{path.name} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise StoreError(f"{path.name} is damaged: {info.st_size} bytes, more than any run writes")
        return fh.read(limit + 1)


def read_json(path: Path) -> Any:
    """Reads a JSON file, turning absence or damage into a StoreError naming the file."""
    path = Path(path)
    data = read_bytes(path)
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise StoreError(f"{path.name} is damaged: {str(exc)[:200]}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


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
    layout = RunLayout(run_dir)
    layout.config.write_text(to_toml(config), encoding="utf-8")
    status: Status = {"state": "queued" if queued_by else "running", "pid": queued_by, "host": socket.gethostname(),
                      "error": None,
              "created": time.time(), "updated": time.time(), "preset": preset or config.name}
    if group:
        status["group"] = group
    write_json_atomic(layout.status, status)
    return run_dir


def read_config(run_dir: Path) -> ExperimentConfig:
    """The run's resolved config, validated again (a copied run dir is untrusted input)."""
    path = RunLayout(run_dir).config
    if not path.is_file():
        raise StoreError("config.toml is missing")
    try:
        return from_dict(read_toml(path), str(path))
    except ConfigError as exc:
        raise StoreError(f"config.toml is damaged: {exc}") from None


def read_status(run_dir: Path) -> Status:
    """status.json, its fields type-checked (engine/schema.py)."""
    try:
        return check_status(read_json(RunLayout(run_dir).status))
    except SchemaError as exc:
        raise StoreError(f"status.json is damaged: {exc}") from None


def read_summary(run_dir: Path) -> Summary:
    """summary.json, its shape and figures type-checked (engine/schema.py)."""
    try:
        return check_summary(read_json(RunLayout(run_dir).summary))
    except SchemaError as exc:
        raise StoreError(f"summary.json is damaged: {exc}") from None


def read_result(round_dir: Path) -> RoundRecord:
    """A round's result.json; a damaged one names itself and how to recover."""
    round_dir = Path(round_dir)
    where = f"{round_dir.parent.name}/{round_dir.name}"
    try:
        return check_round(read_json(round_dir / RESULT), "result")
    except (StoreError, SchemaError) as exc:
        reason = str(exc).removeprefix("result.json is damaged: ")
        raise StoreError(f"{where}/result.json is damaged ({reason}); delete {where} and resume to retrain "
                         "that round") from None


def read_evals(round_dir: Path) -> list[EvalPoint]:
    """A round's evals.json, every point type-checked (check_evals)."""
    round_dir = Path(round_dir)
    where = f"{round_dir.parent.name}/{round_dir.name}/{EVALS}"
    try:
        return check_evals(read_json(round_dir / EVALS))
    except (StoreError, SchemaError) as exc:
        raise StoreError(f"{where} is damaged ({str(exc).removeprefix(f'{EVALS} is damaged: ')})") from None


def read_group(folder: Path | str) -> Group:
    """A sweep's group.json (check_group): a runs list of {"run_dir", "swept"} and an axes table;
    an entry without "swept" gets an empty one."""
    try:
        group = check_group(read_json(Path(folder) / GROUP))
    except SchemaError as exc:
        raise StoreError(f"{GROUP} is damaged: {exc}") from None
    for entry in group["runs"]:
        entry.setdefault("swept", {})
    return group


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events appended since byte `offset`, and the offset to continue from.

    A last line without its newline is still being written: it is left for the next call.
    Damaged lines are skipped rather than stopping the reader.
    """
    path = RunLayout(run_dir).events
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:  # missing, or a symlink that is not followed
        return [], offset
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return [], offset
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for line in data[: end + 1].splitlines():
        try:
            event = json.loads(line, parse_constant=_no_constant)
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        if event_ok(event):
            events.append(event)
    return events, offset + end + 1


def read_lmc(run_dir: Path | str) -> list[LmcRecord]:
    """Every stored LMC result of a run (lmc.json and lmc-k<K>.json of every round), in order
    of trial, round and rewind point (the round-start one first); damaged files are skipped."""
    found = []
    for path in RunLayout(run_dir).lmc_files():
        try:
            record = read_json(path)
        except StoreError:
            continue
        if lmc_ok(record):  # engine/schema.py: a record of the wrong types is skipped like a damaged file
            record["file"] = str(path.relative_to(run_dir))
            found.append(record)
    def key(rec: LmcRecord) -> tuple[int, int, int]:
        return (rec.get("trial", 0), rec.get("round", 0),
                -1 if rec.get("rewind_iteration") is None else rec["rewind_iteration"])
    return sorted(found, key=key)


def read_successive(run_dir: Path | str) -> list[SuccessiveRecord]:
    """Every successive.json of a run that check_successive accepts, by (trial, round); a damaged
    or malformed one is skipped like a damaged LMC file."""
    found = []
    for path in RunLayout(run_dir).successive_files():
        try:
            found.append(check_successive(read_json(path)))
        except (StoreError, SchemaError):
            continue
    return sorted(found, key=lambda rec: (rec.get("trial", 0), rec["round"]))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as CPU tensors (safetensors cannot execute code, unlike pickle)."""
    path = Path(path)
    if path.is_symlink():
        raise StoreError(f"{_where(path)} is a symlink; run-store files are never links, so it is not followed")
    if not path.is_file():
        raise StoreError(f"{_where(path)} is missing")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for damaged headers (a pickle is one)
        raise StoreError(f"{_where(path)} is damaged ({str(exc)[:200]}); "
                         "it is not a safetensors file we wrote") from None


def load_tensors_like(path: Path, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """load_tensors, checked to hold every name of `like` with its shape (a mask or weights file
    of another model, or a truncated one, is named as damaged instead of failing somewhere deep)."""
    tensors = load_tensors(path)
    for name, ref in like.items():
        got = tensors.get(name)
        if got is None:
            raise StoreError(f"{_where(path)} is damaged: it has no tensor {name!r}")
        if tuple(got.shape) != tuple(ref.shape):
            raise StoreError(f"{_where(path)} is damaged: {name} has shape {tuple(got.shape)}, the model's is "
                             f"{tuple(ref.shape)}")
    return tensors


def _where(path: Path) -> str:
    """A run-store file named with its trial/round folders, so a message says which one."""
    parts = Path(path).parts
    tail = [p for p in parts[-3:-1] if parse_trial(p) is not None or parse_round(p) is not None]
    return "/".join([*tail, parts[-1]])


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomic safetensors write; tensors are copied to contiguous CPU memory first."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


CHECKPOINT_FILES = (CHECKPOINT, CHECKPOINT_META)


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
    if not path.is_file() and not path.is_symlink():
        return None
    hint = f"; delete it to restart {_where(path).rpartition('/')[0] or 'the round'} from its start"
    if path.is_symlink():
        raise StoreError(f"{_where(path)} is a symlink, not followed{hint}")
    from safetensors import safe_open

    try:
        with safe_open(str(path), "np") as fh:
            text = (fh.metadata() or {}).get("checkpoint")
        meta = read_json(Path(directory) / CHECKPOINT_FILES[1]) if text is None else json.loads(text)
    except StoreError as exc:
        raise StoreError(f"{_where(path)}: {exc}{hint}") from None
    except Exception as exc:  # safetensors raises several types for damaged headers
        raise StoreError(f"{_where(path)} is damaged ({str(exc)[:200]}){hint}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("step"), int) or not isinstance(meta.get("evals"), list):
        raise StoreError(f"{_where(path)} is damaged (its header has no step and evals){hint}")
    return meta


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
        self.layout = RunLayout(self.dir)
        try:
            fd = os.open(self.layout.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise StoreError(f"events.jsonl cannot be opened for writing ({exc.strerror}); is it a symlink?") from None
        self._events = os.fdopen(fd, "a", encoding="utf-8")
        self._status_lock = threading.Lock()  # the heartbeat thread writes status.json too

    def close(self) -> None:
        self._events.close()

    def event(self, event: str, **fields: Any) -> Event:
        """Appends one line; a NaN or infinity never reaches the file (an eval's is divergence)."""
        bad = find_non_finite(fields)
        if bad is not None:
            if event == "eval":
                key = next((k for k in LOSS_KEYS if find_non_finite(fields.get(k)) is not None), bad)
                shown = "loss" if key in LOSS_KEYS else key
                raise Diverged(f"diverged at iteration {fields.get('iteration')} of round {fields.get('round')} "
                               f"of trial {fields.get('trial')} ({shown} {fields.get(key)}); "
                               "lower train.lr")
            raise Diverged(f"{event} of round {fields.get('round')} of trial {fields.get('trial')} "
                           f"has a non-finite {bad}; lower train.lr")
        record = cast(Event, {"event": event, "time": time.time(), **fields})
        self._events.write(json.dumps(record, allow_nan=False, default=_json_default) + "\n")
        self._events.flush()
        return record

    def status(self, **fields: Any) -> None:
        with self._status_lock:
            try:
                current = read_json(self.layout.status)
            except StoreError:
                current = {}
            if not isinstance(current, dict):
                current = {}
            current.update(fields, updated=time.time())
            write_json_atomic(self.layout.status, current)

    def summary(self, summary: Summary) -> None:
        write_json_atomic(self.layout.summary, summary)

    def trial_dir(self, trial: int) -> Path:
        return self.layout.trial_dir(trial)

    def round_dir(self, trial: int, round_: int) -> Path:
        return self.layout.round_dir(trial, round_)


def holder_alive(status: Status) -> bool:
    """Whether the process a status names is there: its runner, or while queued, its sweep.

    On this host the pid must be alive and (when recorded) have the runner's start time; on
    another host only a fresh heartbeat (or none at all, from an older lth-tui) counts.
    """
    return liveness(status) == "alive"


_TEMP = re.compile(r"^\.(.+?)\.(\d+)(\.\d+)?\.tmp$")


def remove_stale_temps(run_dir: Path) -> int:
    """Deletes the hidden *.tmp files a kill during a write left in the run dir; returns how many.

    A temp file of a live process (its pid is in the name) other than this one is left alone.
    """
    removed = 0
    layout = RunLayout(run_dir)
    trials = [layout.trial_dir(t) for t in layout.trials_on_disk()]
    rounds = [d for t in layout.trials_on_disk() for _, d in layout.rounds_on_disk(t)]
    for path in [layout.dir, *trials, *rounds]:
        if path.is_symlink() or not path.is_dir():
            continue
        for item in path.iterdir():
            match = _TEMP.match(item.name)
            if not match or (int(match.group(2)) != os.getpid() and pid_alive(int(match.group(2)))):
                continue
            try:
                item.unlink()
                removed += 1
            except (IsADirectoryError, PermissionError, FileNotFoundError):
                continue
    return removed


def iter_round_dirs(run_dir: Path, trial: int) -> Iterator[tuple[int, Path]]:
    """(round, dir) for the rounds present on disk, in order (RunLayout.rounds_on_disk)."""
    return RunLayout(run_dir).rounds_on_disk(trial)
