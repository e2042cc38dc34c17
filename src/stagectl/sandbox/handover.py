"""How long a release's traffic was on its candidate, seen from outside a sandbox server.

The deploy writes a project's hand-over file (`config/nginx-live/django.conf`) when it points the
project nginx at the candidate, and removes it when it points it back at `django`: the time the
file was there is the switch time the release tests and benchmarks/release_benchmark.py print.
Polled through `docker exec` about once a second (so the figure is good to a second), in a
thread that stops with the `with` block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from stagectl.sandbox import docker_cli
from stagectl.sandbox.errors import SandboxError


def live_file(project: str) -> str:
    """The hand-over file of `project` on the server."""
    return f"/opt/projects/{project}/config/nginx-live/django.conf"


@dataclass
class HandOverWatch:
    server_name: str
    path: str
    interval: float = 1.0
    first: float | None = None
    last: float | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def poll(self) -> None:
        while not self.stop.is_set():
            try:
                seen = docker_cli.run("exec", self.server_name, "test", "-e", self.path, check=False, timeout=30).ok
            except SandboxError:
                seen = False
            now = time.monotonic()
            if seen:
                self.first = self.first if self.first is not None else now
                self.last = now
            self.stop.wait(self.interval)

    def seconds(self) -> float | None:
        """Seconds from the first to the last poll that saw the file; None: never switched."""
        if self.first is None or self.last is None:
            return None
        return self.last - self.first

    def summary(self) -> str:
        seconds = self.seconds()
        return "never switched to a candidate" if seconds is None else f"on the candidate for ~{seconds:.0f} s"


@contextmanager
def watch_hand_over(server_name: str, project: str, *, interval: float = 1.0) -> Iterator[HandOverWatch]:
    """Watch `project`'s hand-over file on `server_name` while the block runs."""
    watch = HandOverWatch(server_name, live_file(project), interval=interval)
    thread = threading.Thread(target=watch.poll, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        thread.join()
