"""Which torch device a run uses, and the fast paths that would cost it time there.

Its own module so the runner, LMC, sweeps and the CLI ask one place, none of them the runner.
"""

from __future__ import annotations

import torch

from engine.config import ConfigError, ExperimentConfig


def resolve_device(name: str) -> torch.device:
    """"auto" picks the GPU when there is one; asking for a missing GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device", "device", name, "no CUDA GPU is visible here; use auto or cpu")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise ConfigError("device", "device", name, f"this machine has {count} GPU(s): cuda:0..cuda:{count - 1}")
    return torch.device(name)


def speed_warnings(config: ExperimentConfig, device: torch.device) -> list[str]:
    """Opt-in fast paths that measured slower on this kind of device (benchmarks/README.md, table 7).

    They stay allowed (the run is still correct), but a user who asked for speed should hear
    that it will cost them instead.
    """
    warnings = []
    if torch.device(device).type == "cpu":
        if config.train.bf16:
            warnings.append("train.bf16 on a CPU: bfloat16 autocast measured 4-9x slower than float32 on CPUs "
                            "without bf16 units (benchmarks/README.md, table 7); set train.bf16 = false unless "
                            "this CPU has them")
        if config.train.compile:
            warnings.append("train.compile on a CPU: torch.compile measured no faster for small models on a CPU "
                            "and costs seconds of compilation per round (benchmarks/README.md, table 7)")
    return warnings
