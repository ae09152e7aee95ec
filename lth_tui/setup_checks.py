"""What Setup checks before it says "ready", in workers: the dataset's files and the model's size.

Both import the engine (torch), so they never run on the UI thread or at start; the messages
speak the app's language (the Data panel's "data dir" and "download" fields), not the CLI's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ConfigChecks", "ModelSize", "data_problem", "model_size"]


def data_problem(config: Any) -> str:
    """"" when the run can read its data (or will download it); else what to do in the app."""
    from engine.dataset_files import missing_files
    from engine.datasets import DATASETS, default_data_dir

    data_dir = Path(config.data.dir).expanduser() if config.data.dir else default_data_dir()
    folder, missing = missing_files(config.data.name, data_dir)
    if not missing or config.data.download:
        return ""
    title = DATASETS[config.data.name].description.split(":")[0]
    where = folder.relative_to(data_dir) if folder.is_relative_to(data_dir) else folder
    return (f"{title} files are not in {folder} ({len(missing)} missing): set data dir (Data panel) to a folder "
            f"that holds {where}/, or tick download")


@dataclass(frozen=True)
class ModelSize:
    """Parameters of the model built for the dataset, and the prunable weights per layer."""

    parameters: int
    prunable: tuple[tuple[str, int], ...]

    def line(self) -> str:
        layers = " · ".join(f"{name.removesuffix('.weight')} {_count(n)}" for name, n in self.prunable)
        total = sum(n for _, n in self.prunable)
        return f"{_count(self.parameters)} parameters, {_count(total)} prunable: {layers}"


def _count(n: int) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def model_size(config: Any) -> ModelSize:
    """Builds the model on the CPU once (as the launch check does) and counts its weights."""
    from engine.datasets import DATASETS
    from engine.models import build_model, layer_kinds, model_options
    from engine.training import generator

    spec = DATASETS[config.data.name]
    model = build_model(config.model.name, input_shape=spec.input_shape, num_classes=spec.num_classes,
                        hidden=config.model.hidden, init=config.model.init, generator=generator(0, "check"),
                        **model_options(config))
    params = dict(model.named_parameters())
    return ModelSize(sum(p.numel() for p in params.values()),
                     tuple((name, params[name].numel()) for name in layer_kinds(model)))


def _model_line(config: Any) -> tuple[bool, str]:
    try:
        return True, model_size(config).line()
    except Exception as exc:  # a model that cannot take this dataset: shown in Setup, not raised
        return False, str(exc)


class ConfigChecks:
    """The data and model checks of the config Setup shows; each re-runs in a worker when its
    inputs change, and `changed` is called (on the UI thread) when a result comes in."""

    def __init__(self, start_worker: Callable[..., Any], changed: Callable[[], None]) -> None:
        self._start, self._changed = start_worker, changed
        self._results: dict[str, tuple[Any, Any]] = {}  # name -> (inputs, result or None while running)

    def result(self, config: Any) -> str | None:
        """"" when both pass, the problem, or None while a check runs (started here if needed)."""
        d, m = config.data, config.model
        for name, key, fn in (("data", (d.name, d.dir, d.download), data_problem),
                              ("model", (d.name, m.name, tuple(m.hidden), m.init), _model_line)):
            if self._results.get(name, (None,))[0] != key:
                self._results[name] = (key, None)

                def done(result: Any, name: str = name, key: Any = key) -> None:
                    if self._results.get(name, (None,))[0] == key:
                        self._results[name] = (key, result)
                        self._changed()

                self._start(fn, config, name=f"check {name}", group=f"setup-{name}", exclusive=True, on_success=done)
        data, model = self._results["data"][1], self._results["model"][1]
        if data is None or model is None:
            return None
        return data or ("" if model[0] else f"model: {model[1]}")

    def problem(self, key: str) -> str:
        """What stops the run, for the field whose hint shows it: data.name or model.name."""
        if key == "data.name":
            return self._results.get("data", (None, None))[1] or ""
        model = self._results.get("model", (None, None))[1]
        return model[1] if key == "model.name" and model is not None and not model[0] else ""

    def model_line(self) -> str:
        """The model's size once built, "" before or when it cannot be built."""
        model = self._results.get("model", (None, None))[1]
        return model[1] if model is not None and model[0] else ""
