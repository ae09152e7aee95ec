"""lth-tui: the Textual app and the headless CLI over the engine's run store.

Importing this package imports neither textual nor torch; `lth_tui.app` is the only module
that brings in the UI stack.
"""
