"""The lottery-ticket engine: pure PyTorch, usable without the app.

Nothing in this package imports textual, rich or plotext; the app and the headless CLI
talk to it through the run store and the public functions re-exported here.
"""
