"""The lottery-ticket engine: pure PyTorch, usable without the app.

Nothing in this package imports textual, rich or plotext. The public entry points are
`engine.config` (load and validate experiments), `engine.store` (the run-store contract),
`engine.runner` (`execute` a run dir, `spawn` it detached) and the registries in
`engine.datasets`, `engine.models`, `engine.criteria` and `engine.actions`. This file stays
empty of imports so that reading a run store does not pull in torch's training stack.
"""
