"""Small modal dialogs: confirm, quit with live runs, a text prompt, export, pick a run, LMC rewind point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, RadioButton, RadioSet, Select, Static
from textual.widgets.option_list import Option

from lth_tui.export import FORMATS
from lth_tui.run_ids import short_id


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; Escape and the default button answer no."""

    BINDINGS = [
        Binding("escape", "answer(False)", "No", id="dialog.no"),
        Binding("y", "answer(True)", "Yes", id="dialog.yes"),
        Binding("n", "answer(False)", "No", show=False, id="dialog.no_key"),
    ]

    def __init__(self, title: str, message: str, yes: str = "Yes", no: str = "No", default_yes: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.message, self.yes, self.no, self.default_yes = title, message, yes, no, default_yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.message, classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error" if not self.default_yes else "primary",
                             compact=True)
                yield Button(f"{self.no} (n)", id="no", variant="default", compact=True)

    def on_mount(self) -> None:
        self.query_one("#yes" if self.default_yes else "#no").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class QuitDialog(ModalScreen[str | None]):
    """Quitting with live runs: leave them running (default), stop them, or stay."""

    BINDINGS = [
        Binding("escape", "choose(None)", "Stay", id="quit.stay"),
        Binding("l", "choose('leave')", "Leave running", id="quit.leave"),
        Binding("s", "choose('stop')", "Stop runs", id="quit.stop"),
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.run_ids = run_ids

    def compose(self) -> ComposeResult:
        n = len(self.run_ids)
        names = "\n".join(f"  • {r}" for r in self.run_ids[:5]) + ("\n  …" if n > 5 else "")
        with Vertical(classes="dialog") as box:
            box.border_title = "Quit lth-tui"
            yield Static(f"{n} run{'s' if n != 1 else ''} still training:\n{names}\n\n"
                         "Leave them running in the background (reopen lth-tui to follow them again), "
                         "or stop them (they checkpoint and can be resumed)?", classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Leave running (l)", id="leave", variant="primary", compact=True)
                yield Button("Stop (s)", id="stop", variant="error", compact=True)
                yield Button("Stay (esc)", id="stay", compact=True)

    def on_mount(self) -> None:
        self.query_one("#leave").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class _InputDialog(ModalScreen[Any]):
    """Enter in the input or the "ok" button calls the subclass's `_accept`; any other button dismisses."""

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._accept()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self._accept()
        else:
            self.dismiss(None)


class TextPrompt(_InputDialog):
    """Asks for one line of text; Enter accepts, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, title: str, message: str, value: str = "", placeholder: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.title_text, self.message, self.value, self.placeholder = title, message, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = self.title_text
            yield Static(self.message, classes="dialog-message")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input", compact=True)
            yield Static("", id="prompt-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK (enter)", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _accept(self) -> None:
        text = self.query_one(Input).value.strip()
        if not text:
            error = self.query_one("#prompt-error", Static)
            error.update("a value is needed")
            error.add_class("shown")
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportDialog(_InputDialog):
    """Format (md, json, csv, png) and the file to write; the default lies in the run dir."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="export.cancel"),
        Binding("m", "format('md')", "Markdown", id="export.md"),
        Binding("j", "format('json')", "JSON", id="export.json"),
        Binding("c", "format('csv')", "CSV", id="export.csv"),
        Binding("p", "format('png')", "PNG", id="export.png"),
    ]

    def __init__(self, what: str, default_for: dict[str, Path], formats: tuple[str, ...] = FORMATS) -> None:
        super().__init__(classes="dialog-screen")
        self.what = what
        self.default_for = default_for
        self.formats = formats
        self.fmt = formats[0]
        self._edited = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog") as box:
            box.border_title = "Export"
            yield Static(self.what, classes="dialog-message")
            with RadioSet(id="export-format", compact=True):
                for i, fmt in enumerate(self.formats):
                    yield RadioButton(f"{fmt} ({'j' if fmt == 'json' else fmt[0]})", value=i == 0, name=fmt,
                                      compact=True)
            yield Label("write to:")
            yield Input(str(self.default_for[self.fmt]), id="export-path", compact=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export (enter)", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def action_format(self, fmt: str) -> None:
        for button in self.query(RadioButton):
            if button.name == fmt:
                button.value = True

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        event.stop()
        self.fmt = event.pressed.name or self.formats[event.index]
        path_input = self.query_one("#export-path", Input)
        current = Path(path_input.value)
        if not self._edited or current in self.default_for.values():
            path_input.value = str(self.default_for[self.fmt])
            self._edited = False

    def on_input_changed(self, event: Input.Changed) -> None:
        if Path(event.value) not in self.default_for.values():
            self._edited = True

    def _accept(self) -> None:
        text = self.query_one("#export-path", Input).value.strip()
        self.dismiss((self.fmt, Path(text).expanduser() if text else self.default_for[self.fmt]))

    def action_cancel(self) -> None:
        self.dismiss(None)


class RunPicker(ModalScreen[Any]):
    """Pick one run from a list (for the overlay); "none" clears it. Returns a Path, "" or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="picker.cancel")]

    def __init__(self, title: str, runs: list[Any], allow_none: bool = True) -> None:
        super().__init__(classes="dialog-screen")
        self.title_text = title
        self.runs = runs
        self.allow_none = allow_none

    def compose(self) -> ComposeResult:
        options: list[Option] = []
        if self.allow_none:
            options.append(Option("(no overlay)", id="-"))
        for info in self.runs:
            acc = "" if info.best_accuracy is None else f"  best {100 * info.best_accuracy:.1f}%"
            what = "/".join(x for x in (info.criterion, getattr(info, "mask1", ""), getattr(info, "mask0", "")) if x)
            preset = getattr(info, "preset", "")
            name = f"{short_id(info.run_id)}  {preset}" if preset else info.run_id  # fits one line at 80 columns
            options.append(Option(f"{name}  {info.state}  {what}{acc}", id=str(info.path)))
        with Vertical(classes="dialog wide-dialog") as box:
            box.border_title = self.title_text
            yield OptionList(*options, id="picker-list")
            yield Static("enter: choose   esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        key = event.option.id
        self.dismiss("" if key == "-" else Path(str(key)))

    def action_cancel(self) -> None:
        self.dismiss(None)


class LmcDialog(_InputDialog):
    """Linear mode connectivity of one round: the rewind iteration k (empty: the round's own
    start) and, when several trials finished the round, which one. Returns (trial, k) or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="lmc.cancel")]

    def __init__(self, run_id: str, round_: int, trials: list[int], iterations: int, own_k: int | None = None) -> None:
        super().__init__(classes="dialog-screen")
        self.run_id, self.round, self.trials, self.iterations, self.own_k = run_id, round_, trials, iterations, own_k

    def compose(self) -> ComposeResult:
        own = "" if self.own_k is None else f" (this run rewinds to k = {self.own_k})"
        with Vertical(classes="dialog") as box:
            box.border_title = f"LMC of round {self.round}"
            yield Static(f"{self.run_id}, round {self.round}: train two copies from θk under the round's mask with "
                         f"different data order, then measure the test-error barrier on the line between them "
                         f"(Frankle et al. 2020). This trains two networks here, in the app's process.\n\n"
                         f"Rewind iteration k, 0..{max(self.iterations - 1, 0)}{own}; empty: start where the round "
                         "started, as the run trained it.", classes="dialog-message")
            with Horizontal(classes="dialog-row"):
                yield Label("k ", classes="control-label")
                yield Input("", placeholder="empty: the round's start", id="lmc-k", compact=True, type="integer")
                if len(self.trials) > 1:
                    yield Label("trial", classes="control-label")
                    yield Select([(str(t + 1), t) for t in self.trials], value=self.trials[0], id="lmc-trial",
                                 compact=True, allow_blank=False)
            yield Static("", id="lmc-error", classes="field-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Compute (enter)", id="ok", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#lmc-k", Input).focus()

    def _accept(self) -> None:
        text = self.query_one("#lmc-k", Input).value.strip()
        k: int | None = None
        if text:
            try:
                k = int(text)
            except ValueError:
                k = -1
            if not 0 <= k < self.iterations:
                error = self.query_one("#lmc-error", Static)
                error.update(f"k = {text!r}: give an iteration in 0..{self.iterations - 1}, or leave it empty")
                error.add_class("shown")
                return
        trial = self.trials[0] if self.trials else 0
        if len(self.trials) > 1:
            value = self.query_one("#lmc-trial", Select).value
            trial = value if isinstance(value, int) else trial
        self.dismiss((trial, k))

    def action_cancel(self) -> None:
        self.dismiss(None)
