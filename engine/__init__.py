"""The lottery-ticket engine: pure PyTorch, usable without the app.

Nothing in this package imports textual, rich or plotext. The public entry points are
`engine.config` (load and validate experiments), `engine.store` (the run-store contract),
`engine.runner` (`execute` a run dir), `engine.launch` (`spawn` it detached) and the
registries in `engine.datasets`, `engine.models`, `engine.criteria`, `engine.actions` and
`engine.experiments`; `engine.load_ticket` reads an exported ticket file (engine/ticket.py) as
a ready module. This file imports nothing at load time, so that reading a run store does not
pull in torch's training stack.
"""

from typing import Any

__all__ = ["load_ticket"]


def __getattr__(name: str) -> Any:
    """`engine.load_ticket` without importing torch for every `import engine`."""
    if name == "load_ticket":
        from engine.ticket import load_ticket

        return load_ticket
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
