"""A bounded HTTP load loop against a sandbox, the way a browser reaches a project: HTTPS to the
sandbox's 443 published on 127.0.0.1, with the project's domain as SNI and Host.

Used by the zero-downtime release tests and by benchmarks/release_benchmark.py: a few
keep-alive connections send GET requests back to back until enough requests were made and the
caller says stop (or a time limit passes), counting every answer that is not a 2xx, and every
request that got no answer, as a failure.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

#: Failures kept with their time and cause, to say when and why requests failed.
MAX_SAMPLES = 20


@dataclass(frozen=True)
class LoadTarget:
    """Where the requests go: `address`:`port`, with `server_name` as SNI and Host."""

    port: int
    server_name: str
    path: str = "/healthz"
    address: str = "127.0.0.1"
    #: Seconds one request may take before it counts as failed.
    timeout: float = 30.0


@dataclass
class LoadResult:
    requests: int = 0
    failures: int = 0
    seconds: float = 0.0
    #: Answers by status ("error" for a request that got none).
    statuses: Counter[str] = field(default_factory=Counter)
    #: (seconds after the start, status or error) of the first failures.
    samples: list[tuple[float, str]] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        seen = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        return (f"{self.requests} requests, {self.failures} failed, {self.seconds:.1f} s "
                f"({rate:.0f}/s); {seen}")


class _Connection(http.client.HTTPSConnection):
    """HTTPS to a fixed address with the target's name as SNI and Host (no DNS involved)."""

    def __init__(self, target: LoadTarget, context: ssl.SSLContext) -> None:
        super().__init__(target.server_name, target.port, timeout=target.timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class _Loop:
    def __init__(self, target: LoadTarget, min_requests: int, max_seconds: float,
                 stop: threading.Event) -> None:
        self.target = target
        self.min_requests = min_requests
        self.max_seconds = max_seconds
        self.stop = stop
        self.result = LoadResult()
        self.lock = threading.Lock()
        self.started = time.monotonic()
        # The sandbox's certificate is self-signed (or from the test ACME server): not verified.
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def done(self) -> bool:
        if time.monotonic() - self.started > self.max_seconds:
            return True
        return self.result.requests >= self.min_requests and self.stop.is_set()

    def record(self, status: str, ok: bool) -> None:
        with self.lock:
            self.result.requests += 1
            self.result.statuses[status] += 1
            if not ok:
                self.result.failures += 1
                if len(self.result.samples) < MAX_SAMPLES:
                    self.result.samples.append((time.monotonic() - self.started, status))

    def worker(self) -> None:
        conn: _Connection | None = None
        while not self.done():
            current = conn or _Connection(self.target, self.context)
            conn = current
            try:
                current.request("GET", self.target.path, headers={"User-Agent": "stagectl-load"})
                answer = current.getresponse()
                answer.read()
                self.record(str(answer.status), 200 <= answer.status < 300)
                if answer.will_close:
                    current.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                self.record(f"error {type(exc).__name__}", False)
                current.close()
                conn = None
        if conn is not None:
            conn.close()


def run_load(target: LoadTarget, *, connections: int = 3, min_requests: int = 10_000,
             max_seconds: float = 1800.0, stop: threading.Event | None = None) -> LoadResult:
    """Send requests over `connections` connections until at least `min_requests` were made and
    `stop` is set (at once when there is no `stop`), or `max_seconds` passed."""
    loop = _Loop(target, min_requests, max_seconds, stop or _set_event())
    threads = [threading.Thread(target=loop.worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    loop.result.seconds = time.monotonic() - loop.started
    return loop.result


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass
class BackgroundLoad:
    """A load loop running while a `with background_load(...)` block runs; `result` once it ended."""

    stop: threading.Event
    thread: threading.Thread
    result: LoadResult | None = None


@contextmanager
def background_load(target: LoadTarget, *, connections: int = 3, min_requests: int = 10_000,
                    max_seconds: float = 1800.0) -> Iterator[BackgroundLoad]:
    """Run `run_load` in the background for the time of the block (and longer, until it made
    `min_requests`); the result is on the yielded object after the block."""
    stop = threading.Event()
    holder: list[LoadResult] = []
    thread = threading.Thread(
        target=lambda: holder.append(run_load(target, connections=connections, min_requests=min_requests,
                                              max_seconds=max_seconds, stop=stop)),
        daemon=True,
    )
    load = BackgroundLoad(stop=stop, thread=thread)
    thread.start()
    try:
        yield load
    finally:
        stop.set()
        thread.join()
        load.result = holder[0] if holder else LoadResult()
