"""The public edge on the session's sandbox, as a browser sees it through the published 443
(127.0.0.1, SNI and Host a project's domain): security headers on every HTTPS answer, each once,
the app's own values kept where it sends them; uploads that cannot run script on the app's origin;
TLS as an outside scanner (sslscan) finds it; floods from one address answered 429."""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import uuid

from stagectl.environment import load_environment
from tests.conftest import missing_tool
from tests.deploy.conftest import Deployed
from tests.deploy.test_certificates import https_names

PROJECT = "project2"
DOMAIN = f"{PROJECT}.sandbox.test"
MEDIA = f"/opt/projects/{PROJECT}/data/media"
EDGE_DEFAULTS = {
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def https(port: int, path: str) -> tuple[int, dict[str, list[str]], bytes]:
    """GET https://DOMAIN<path> sent to 127.0.0.1:<port>: the status, every header (lower-case name
    -> its values, in order) and the body."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw, \
            context.wrap_socket(raw, server_hostname=DOMAIN) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), headers, body


def test_an_app_page_keeps_the_apps_own_headers_and_gets_the_missing_ones(deployed: Deployed) -> None:
    status, headers, _ = https(deployed.info.https_port, "/notes/")
    assert status == 200, headers
    # Django's SecurityMiddleware and XFrameOptionsMiddleware sent these: the edge adds no second.
    assert headers["referrer-policy"] == ["same-origin"], headers
    assert headers["x-frame-options"] == ["DENY"], headers
    assert headers["x-content-type-options"] == ["nosniff"], headers
    assert headers["strict-transport-security"] == [EDGE_DEFAULTS["strict-transport-security"]], headers


def test_an_answer_of_nginx_itself_gets_every_header(deployed: Deployed) -> None:
    # The metrics path is answered 404 by the main nginx, without asking the app.
    status, headers, _ = https(deployed.info.https_port, "/metrics")
    assert status == 404, headers
    for name, value in EDGE_DEFAULTS.items():
        assert headers.get(name) == [value], (name, headers)


def test_an_uploaded_page_or_svg_cannot_run_script_on_the_apps_origin(deployed: Deployed) -> None:
    owner = deployed.sh(f"stat -c %u:%g {MEDIA}").strip()
    name = f"edge-{uuid.uuid4().hex[:8]}"
    page = "<html><body><script>document.title = document.cookie</script></body></html>"
    svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>'
    deployed.sh(f"cat > {MEDIA}/{name}.html && chown {owner} {MEDIA}/{name}.html", stdin=page)
    deployed.sh(f"cat > {MEDIA}/{name}.svg && chown {owner} {MEDIA}/{name}.svg", stdin=svg)
    try:
        for path, content_type, body in ((f"/media/{name}.html", "text/html", page),
                                         (f"/media/{name}.svg", "image/svg+xml", svg)):
            status, headers, served = https(deployed.info.https_port, path)
            assert status == 200 and served.decode() == body, (path, headers)
            assert headers["content-type"][0].startswith(content_type), headers
            # A sandbox without allow-scripts: no script runs, and the document has an origin of its
            # own (no cookie, no storage of the app's); nothing is sniffed into another type.
            (policy,) = headers["content-security-policy"]
            directives = {d.strip().split()[0] for d in policy.split(";") if d.strip()}
            assert "sandbox" in directives and "allow-scripts" not in policy, policy
            assert "default-src" in directives and "script-src" not in directives, policy
            assert headers["x-content-type-options"] == ["nosniff"], headers
    finally:
        deployed.sh(f"rm -f {MEDIA}/{name}.html {MEDIA}/{name}.svg")


def test_an_outside_scanner_finds_nothing_below_tls_1_2_and_no_weak_cipher(deployed: Deployed) -> None:
    if shutil.which("sslscan") is None:
        missing_tool("needs sslscan (Debian package; scripts/testbed-setup.sh installs it)")
    for name in https_names(deployed):
        scan = subprocess.run(["sslscan", "--no-colour", f"--sni-name={name}",
                               f"127.0.0.1:{deployed.info.https_port}"],
                              capture_output=True, text=True, timeout=180, check=True).stdout
        protocols = dict(re.findall(r"^(SSLv[23]|TLSv1\.[0-3])\s+(enabled|disabled)$", scan, re.MULTILINE))
        assert protocols == {"SSLv2": "disabled", "SSLv3": "disabled", "TLSv1.0": "disabled",
                             "TLSv1.1": "disabled", "TLSv1.2": "enabled", "TLSv1.3": "enabled"}, (name, scan)
        accepted = re.findall(r"^(?:Preferred|Accepted)\s+(TLSv1\.[23])\s+(\d+) bits\s+(\S+)", scan, re.MULTILINE)
        assert accepted, scan
        for protocol, bits, cipher in accepted:
            assert int(bits) >= 128, (name, protocol, cipher)
            if protocol == "TLSv1.2":
                # Forward secrecy and an AEAD only: no RSA key exchange, no CBC, SHA-1, RC4 or 3DES.
                assert re.fullmatch(r"ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)",
                                    cipher), (name, cipher)
        assert "Insecure session renegotiation supported" not in scan, scan
        assert "vulnerable to heartbleed" in scan and " is vulnerable to heartbleed" not in scan, scan


FLOOD = """
import http.client, socket, ssl, sys, time
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE


def connect():
    conn = http.client.HTTPSConnection(sys.argv[2], 443, context=context, timeout=10)
    conn.sock = context.wrap_socket(socket.create_connection((sys.argv[1], 443), 10), server_hostname=sys.argv[2])
    return conn


def get(conn):
    conn.request("GET", "/healthz", headers={"Host": sys.argv[2]})
    response = conn.getresponse()
    response.read()
    return response.status


conn, codes, started = connect(), [], time.monotonic()
for _ in range(int(sys.argv[3])):
    codes.append(get(conn))
elapsed = time.monotonic() - started
time.sleep(float(sys.argv[4]))
print(elapsed, codes.count(200), codes.count(429), len(codes), get(connect()))
"""


def test_a_flood_from_one_address_is_answered_429_then_let_through_again(deployed: Deployed) -> None:
    """From a container on the server: an address the sandbox does not exempt (only this machine's
    tests are, security.http_rate_limit.ignore_addresses), limited as any visitor would be."""
    settings = load_environment(deployed.root).env.settings
    limit = settings.security.http_rate_limit
    nginx = deployed.sh("docker ps --filter label=com.docker.compose.service=nginx "
                        "--filter label=com.docker.compose.project=shared --format '{{.Names}}'").strip()
    address = deployed.sh(f"docker inspect --format "
                          f"'{{{{(index .NetworkSettings.Networks \"projects\").IPAddress}}}}' {nginx}").strip()
    sent = limit.burst + 3 * limit.rate
    pause = (limit.burst + 1) / limit.rate
    out = deployed.sh(
        f"docker run --rm -i --network projects {settings.project_defaults.images.python} "
        f"python - {address} {DOMAIN} {sent} {pause} <<'PY'\n{FLOOD}PY\n",
        timeout=180,
    )
    elapsed, ok, limited, total, after = out.split()
    assert int(total) == sent and int(ok) + int(limited) == sent, out
    # Up to the burst at once, then `rate` a second; everything beyond is refused with 429.
    assert int(limited) > 0, out
    assert int(ok) <= limit.burst + limit.rate * float(elapsed) + 2, out
    # Slowed down, the address is served again.
    assert after == "200", out
    log = deployed.sh(f"docker logs --since 5m {nginx} 2>&1 | grep -c '\"status\":429' || true")
    assert int(log.strip()) >= int(limited)
