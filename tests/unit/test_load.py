"""The load loop of the release tests (stagectl.sandbox.load) against a local HTTPS server that
checks SNI and Host: what it counts as requests and failures, and that it stops by itself."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from stagectl.sandbox.load import LoadTarget, background_load, run_load

NAME = "app.load.test"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: Requests to /flaky answered 503 while this is set.
    failing = threading.Event()

    def do_GET(self) -> None:
        ok = self.headers.get("Host", "").split(":")[0] == NAME and not (self.path == "/flaky" and self.failing.is_set())
        body = b"ok\n" if ok else b"no\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs openssl to make a certificate")
    tmp = tmp_path_factory.mktemp("tls")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={NAME}",
                    "-keyout", str(key), "-out", str(cert)], capture_output=True, check=True, timeout=60)
    snis: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: snis.append(name)  # type: ignore[assignment,func-returns-value]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    assert set(snis) == {NAME}


def test_counts_every_request_and_no_failure_when_all_succeed(server: int) -> None:
    result = run_load(LoadTarget(port=server, server_name=NAME), connections=3, min_requests=300)
    assert 300 <= result.requests < 310
    assert result.failures == 0 and result.statuses == {"200": result.requests}


def test_counts_non_2xx_answers_and_refused_connections_as_failures(server: int) -> None:
    Handler.failing.set()
    try:
        result = run_load(LoadTarget(port=server, server_name=NAME, path="/flaky"), connections=2, min_requests=50)
    finally:
        Handler.failing.clear()
    assert result.failures == result.requests >= 50
    assert result.samples and result.samples[0][1] == "503"

    # Nothing listens there: every attempt fails, and the loop still ends.
    refused = run_load(LoadTarget(port=free_port(), server_name=NAME, timeout=2), connections=1, min_requests=5)
    assert refused.failures == refused.requests >= 5
    assert refused.samples[0][1].startswith("error ")


def test_background_load_runs_until_the_block_ends_and_stops_by_itself(server: int) -> None:
    with background_load(LoadTarget(port=server, server_name=NAME), connections=2, min_requests=10) as load:
        time.sleep(0.5)
        assert load.result is None
    assert load.result is not None and load.result.requests >= 10 and load.result.failures == 0
    # A time limit ends it even when `min_requests` is out of reach.
    capped = run_load(LoadTarget(port=server, server_name=NAME), connections=1, min_requests=10**9, max_seconds=1)
    assert 0 < capped.requests < 10**9


def free_port() -> int:
    """A 127.0.0.1 port that was free a moment ago: nothing listens there."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
