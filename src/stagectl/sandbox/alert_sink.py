"""A webhook receiver inside the sandbox, so that alerts can be followed to their end.

The sandbox environment points `alerting.webhook_urls` at it; it runs as a plain container on the
sandbox's `shared` network (Alertmanager's) (not part of any stack stagectl deploys), answers every POST with
200 and prints each notification as one JSON line, which `received()` reads back from its logs.
Nothing leaves the sandbox.
"""

from __future__ import annotations

import json
from typing import Any

from stagectl.sandbox import docker_cli

NAME = "stagectl-alert-sink"
PORT = 9099
URL = f"http://{NAME}:{PORT}/alerts"
NETWORK = "shared"

# Runs with the Python of the project base image (its stand-in in the sandbox): no extra image.
_SERVER = f"PORT = {PORT}\n" + """
import http.server, json, sys, time

class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        print(json.dumps({"received_at": time.time(), "path": self.path, "payload": payload}), flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("", PORT), Sink).serve_forever()
"""


def _docker(sandbox: str, *args: str, check: bool = True) -> str:
    return docker_cli.in_helper(sandbox, NAME, "alert receiver", *args, check=check)


def start(sandbox: str, image: str) -> None:
    """Start the sink (again): its log starts empty, so `received()` shows only what came after."""
    _docker(sandbox, "rm", "--force", NAME, check=False)
    # --init: as PID 1 the Python server would ignore SIGTERM, and every stop (the sandbox's
    # shutdown too) would wait for Docker's timeout before killing it.
    _docker(
        sandbox, "run", "--detach", "--name", NAME, "--network", NETWORK,
        "--memory", "64m", "--restart", "unless-stopped", "--read-only", "--init",
        "--label", "stagectl.sandbox=alert-sink",
        image, "python3", "-u", "-c", _SERVER,
    )


def received(sandbox: str) -> list[dict[str, Any]]:
    """Every notification the sink got, oldest first: {received_at, path, payload}."""
    lines = _docker(sandbox, "logs", NAME).splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
