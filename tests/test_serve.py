"""`lth-tui serve`: the app in a real headless Chromium over textual-serve, and the bind warning."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import CHROMIUM, Browser, screen_text, websocket_stream

ROOT = Path(__file__).resolve().parent.parent
SETUP_TEXT = ("lth-tui — setup", "preset", "╭─ Pruning", "criterion", "large_final", "Start run")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_page(url: str, server: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                out = server.stdout.read().decode(errors="replace") if server.poll() is not None else ""
                raise AssertionError(f"lth-tui serve did not answer on {url}: {out}") from None
            time.sleep(0.5)


def test_serve_shows_the_setup_screen_in_headless_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home), "LTH_TUI_RUNS_DIR": str(tmp_path / "runs"),
           "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "lth_tui.cli", "serve", "--port", str(port)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}/"
        page = _wait_for_page(url, server, 60)
        assert f"ws://127.0.0.1:{port}/ws" in page  # the websocket comes back to the loopback address
        browser = Browser(tmp_path / "chromium-profile")
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        browser.call("Network.enable", session=session)
        browser.call("Page.enable", session=session)
        browser.call("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + 120
        text = ""
        while not all(s in text for s in SETUP_TEXT):
            assert time.monotonic() < deadline, f"the Setup screen did not appear; the page's terminal shows:\n{text}"
            browser.pump(1.0)
            text = "\n".join(screen_text(websocket_stream(browser.events)))
        state = browser.call("Runtime.evaluate", {"expression": "[document.body.className, "
                                                  "document.querySelectorAll('.xterm-screen canvas').length]",
                                                  "returnByValue": True}, session=session)["result"]["value"]
        assert "-first-byte" in state[0] and state[1] >= 1  # xterm.js in the page drew the bytes it got
        shot = os.environ.get("LTH_TUI_SCREENSHOT")
        if shot:  # for a person to look at: LTH_TUI_SCREENSHOT=/tmp/serve.png pytest tests/test_serve.py
            import base64

            data = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
            Path(shot).write_bytes(base64.b64decode(data))
    finally:
        if browser is not None:
            browser.close()
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        server.stdout.close()


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("localhost", False), ("::1", False),
                                          ("0.0.0.0", True), ("192.0.2.7", True)])
def test_binding_beyond_loopback_warns(host: str, warned: bool, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from textual_serve.server import Server

    from lth_tui.cli import main

    started = []
    monkeypatch.setattr(Server, "serve", lambda self, debug=False: started.append((self.host, self.port, self.command)))
    assert main(["serve", "--host", host, "--port", "8123"]) == 0
    err = capsys.readouterr().err
    assert ("no authentication" in err and "ssh -L" in err) == warned
    assert started[0][:2] == (host, 8123) and started[0][2].endswith("-m lth_tui.cli")
    assert main(["serve", "--port", "0"]) == 2
    assert "--port 0 is not a port" in capsys.readouterr().err


async def test_exports_made_in_the_browser_are_offered_as_downloads(analysis_runs, preset_home: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import wait_for

    from lth_tui.app import LthApp

    monkeypatch.setattr(LthApp, "is_web", property(lambda self: True))  # as under textual-serve's web driver
    app = LthApp(tmp_path / "runs")
    offered: list[tuple[Path, str]] = []
    app.deliver_binary = lambda path, save_filename=None, **kw: offered.append((Path(path), save_filename))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen is app.setup_screen and app.setup_screen.built, 30)
        target = tmp_path / "out" / "report.md"
        app.export([analysis_runs["imp"]], "md", target)
        await wait_for(pilot, lambda: offered)
    assert offered == [(target, "report.md")] and target.read_text().startswith("# ")
