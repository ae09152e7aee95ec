"""`lth-tui serve`: the same app in a browser, through textual-serve.

textual-serve starts one app process per browser tab (with Textual's web driver) and streams
its terminal output over a websocket to xterm.js in the page. It has no authentication: anyone
who can reach the port drives the app with your files. So it binds 127.0.0.1 by default and
the way in from a laptop is an SSH tunnel (`ssh -L 8000:localhost:8000 gpu-box`, then open
http://localhost:8000); binding any other address prints a warning first.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def is_loopback(host: str) -> bool:
    """True for localhost and addresses in 127.0.0.0/8 or ::1."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def app_command(runs_dir: Path | None = None) -> str:
    """The shell command textual-serve runs per browser tab: this Python, this package's app."""
    argv = [sys.executable, "-m", "lth_tui.cli"]
    if runs_dir is not None:
        argv += ["--runs-dir", str(Path(runs_dir).expanduser().resolve())]
    return shlex.join(argv)


def default_public_url(host: str, port: int) -> str:
    """The URL the page's websocket connects back to (textual-serve puts it in the page)."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def serve(host: str = "127.0.0.1", port: int = 8000, *, runs_dir: Path | None = None,
          public_url: str | None = None) -> int:
    """Serves the app until Ctrl-C; the exit code for the shell."""
    if not 0 < port < 65536:
        print(f"lth-tui: error: --port {port} is not a port; allowed: 1..65535", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not is_loopback(host):
        print(f"lth-tui: warning: serving on {host}:{port}, reachable from other machines; textual-serve has no "
              "authentication, so anyone who reaches this port drives the app with your files. Prefer the default "
              "127.0.0.1 and an SSH tunnel: ssh -L 8000:localhost:8000 THIS-HOST", file=sys.stderr)
    try:
        from textual_serve.server import Server
    except ImportError:
        print("lth-tui: error: textual-serve is not installed; pip install textual-serve (a dependency of lth-tui)",
              file=sys.stderr)
        return EXIT_FAILED
    server = Server(app_command(runs_dir), host=host, port=port, title="lth-tui",
                    public_url=public_url or default_public_url(host, port))
    try:
        server.serve()
    except OSError as exc:
        print(f"lth-tui: error: cannot serve on {host}:{port}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
