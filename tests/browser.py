"""Headless Chromium for the tests, driven over the DevTools protocol on a pipe (no port, no extra package),
and a small terminal emulator that turns the ANSI stream the page received into the screen's text.

xterm.js draws textual-serve's terminal on a canvas, so the page's DOM holds no text; what the
browser received over the app's websocket (DevTools' Network.webSocketFrameReceived) is the
terminal stream, and replaying its cursor moves gives the characters on the screen.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--window-size=1280,900",
         # Loopback only: every other host name fails to resolve (the page links a web font).
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


class Browser:
    """One Chromium process; `call` sends a DevTools command and returns its result, queuing events."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Copies above 10, so that placing them at 3 and 4 in the child cannot clobber one another.
        high = (fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10),
                fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def fds() -> None:  # Chromium's --remote-debugging-pipe reads fd 3 and writes fd 4
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = open(Path(profile).with_suffix(".log"), "wb")
        try:
            self.process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                             "about:blank"], preexec_fn=fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                            stdout=self.log, stderr=self.log)
        finally:
            os.close(high[0])
            os.close(high[1])
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def pump(self, seconds: float) -> None:
        """Reads events for up to `seconds`."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._read_message(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self.log.close()


_TOKEN = re.compile(r"\x1b\[([0-9;?<>=:]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP.*?\x1b\\|"
                    r"\x1b[()][0-9A-Za-z]|\x1b.|"
                    r"[\r\n\b]|[^\x00-\x1f\x1b]+", re.S)


def screen_text(stream: str, cols: int = 300, rows: int = 120) -> list[str]:
    """The lines a terminal shows after `stream` (cursor moves, erases and text; styles ignored)."""
    grid = [[" "] * cols for _ in range(rows)]
    row = col = 0
    for match in _TOKEN.finditer(stream):
        token = match.group(0)
        if match.group(2):
            params = match.group(1).lstrip("?").split(";") if match.group(1) else []
            args = [int(a) if a.isdigit() else 0 for a in params]
            final = match.group(2)
            first = args[0] if args else 0
            if final in "Hf":
                row, col = max((args[0] if args else 1), 1) - 1, max((args[1] if len(args) > 1 else 1), 1) - 1
            elif final == "G":
                col = max(first, 1) - 1
            elif final == "d":
                row = max(first, 1) - 1
            elif final == "A":
                row -= max(first, 1)
            elif final == "B":
                row += max(first, 1)
            elif final == "C":
                col += max(first, 1)
            elif final == "D":
                col -= max(first, 1)
            elif final == "J" and first == 2 and not match.group(1).startswith("?"):
                grid = [[" "] * cols for _ in range(rows)]
            elif final == "K" and 0 <= row < rows:
                grid[row][col:] = [" "] * (cols - col)
            row, col = min(max(row, 0), rows - 1), min(max(col, 0), cols - 1)
        elif token == "\r":
            col = 0
        elif token == "\n":
            row = min(row + 1, rows - 1)
        elif token == "\b":
            col = max(col - 1, 0)
        elif not token.startswith("\x1b"):
            for char in token:
                if col < cols:
                    grid[row][col] = char
                col += 1
    return ["".join(line).rstrip() for line in grid]


def websocket_stream(events: list[dict[str, Any]]) -> str:
    """The terminal stream of every binary websocket frame the page received, decoded as UTF-8."""
    data = b""
    for event in events:
        if event.get("method") == "Network.webSocketFrameReceived":
            response = event["params"]["response"]
            if response.get("opcode") == 2:
                data += base64.b64decode(response["payloadData"])
    return data.decode("utf-8", errors="replace")
