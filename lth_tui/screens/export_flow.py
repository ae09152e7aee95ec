"""Export from wherever the user is: the dialog, the overwrite question, the writing worker.

A mixin for the screens that export (Runs, Compare) and the App (which the Run screen asks),
so each writes in a worker of its own and hears back through its own typed messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import work
from textual.message import Message

from engine.layout import RunLayout


class ExportFlow:
    """`export_dialog(run_dirs)` asks where and how; `export(...)` writes in a worker."""

    @dataclass
    class Exported(Message):
        fmt: str
        path: Path

    @dataclass
    class ExportFailed(Message):
        fmt: str
        error: BaseException

    def export_dialog(self: Any, run_dirs: list[Path], formats: tuple[str, ...] | None = None) -> None:
        """One run: any format into its dir (every format by default). Several: md or csv as one
        side-by-side table, png as one plot."""
        from lth_tui.export import FORMATS
        from lth_tui.screens.dialogs import ConfirmDialog, ExportDialog

        formats = FORMATS if formats is None else formats
        run_dirs = list(run_dirs)
        if len(run_dirs) == 1:
            defaults = {fmt: RunLayout(run_dirs[0]).export(fmt) for fmt in formats}
            what = f"Export {run_dirs[0].name}"
        else:
            formats = tuple(f for f in formats if f != "json") or ("png",)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            defaults = {fmt: self.app.runs_dir / f"compare-{stamp}.{fmt}" for fmt in formats}
            what = f"Export {len(run_dirs)} runs side by side: md or csv as one table, png as one plot"

        def chosen(result: tuple[str, Path] | None, overwrite: bool = False) -> None:
            if result is None:
                return
            fmt, path = result
            if path.exists() and not overwrite:
                self.app.push_screen(ConfirmDialog("File exists", f"{path} already exists.\nOverwrite it?",
                                                   yes="Overwrite"),
                                     lambda yes: chosen(result, True) if yes else self.export_dialog(run_dirs, formats))
                return
            self.export(run_dirs, fmt, path)

        self.app.push_screen(ExportDialog(what, defaults, formats), chosen)

    @work(thread=True, group="export", exit_on_error=False)
    def export(self: Any, run_dirs: list[Path], fmt: str, path: Path) -> None:
        from lth_tui.store_tasks import write_export

        try:
            self.post_message(ExportFlow.Exported(fmt, write_export(list(run_dirs), fmt, path)))
        except Exception as exc:  # noqa: BLE001 - any failure is told, the screen stays usable
            self.post_message(ExportFlow.ExportFailed(fmt, exc))

    # Handlers by name, not @on: a mixin's decorated handlers are not collected by Textual.
    def on_export_flow_exported(self: Any, message: ExportFlow.Exported) -> None:
        message.stop()
        self.app.notify(f"wrote {message.path}", title=f"exported {message.fmt}")
        if self.app.is_web:  # lth-tui serve: the browser's user gets the file, not only the server's disk
            self.app.deliver_binary(message.path, save_filename=message.path.name)

    def on_export_flow_export_failed(self: Any, message: ExportFlow.ExportFailed) -> None:
        message.stop()
        tell_failure(self.app, f"export {message.fmt}", message.error)


def tell_failure(app: Any, what: str, error: BaseException) -> None:
    """A worker's failure as the user sees it: one error toast titled with what failed."""
    app.log.error(f"{what} failed: {error!r}")
    app.notify(str(error) or type(error).__name__, title=f"{what} failed", severity="error")
