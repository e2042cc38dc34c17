"""The sandbox's ACME server: Debian's pebble, so that the `letsencrypt` provider (certbot,
HTTP-01 on the main nginx's webroot, or DNS-01 through certbot's dns-rfc2136 plugin) runs end
to end with nothing leaving the machine.

It runs in its own small container (image ``stagectl-sandbox/pebble``, built from the Debian
base like the stand-ins) on a Docker network shared with the sandbox server only. Its DNS
(pebble-challtestsrv) answers every name with the server's address on that network, so pebble's
HTTP-01 validations reach the main nginx on the server's port 80 as Let's Encrypt's reach a real
server. The ACME API's TLS certificate is made at container start; its CA is copied onto the
server (SERVER_CA_BUNDLE) for certbot alone (`certificates.acme_ca_bundle`), never into the
server's trust store.

For DNS-01 (the only challenge a wildcard certificate such as ``*.sandbox.test`` can use) the
container also runs BIND on port 53, which pebble asks instead: primary for the one zone
``_acme-challenge.<domain>`` (DNS01_ZONE), which takes RFC 2136 updates signed with a TSIG key
made at container start (`dns01_credentials` gives certbot's settings for it, the server's way
in), and a forwarder to challtestsrv for every other name, so `refuse` and `accept` work as
before. Only that name can be validated by DNS-01: ``_acme-challenge`` of any other name is
forwarded to challtestsrv, which knows no TXT records (BIND answers SERVFAIL).
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stagectl.polling import wait_for
from stagectl.sandbox import docker_cli
from stagectl.sandbox.errors import SandboxError, SandboxImageError
from stagectl.sandbox.images.builder import BuildError, ImageBuilder

LABEL = "org.stagectl.sandbox.acme"
API_PORT = 14000
MANAGEMENT_PORT = 15000
DNS_MANAGEMENT_PORT = 8055
#: The ACME API's CA on the server: certbot's REQUESTS_CA_BUNDLE in the sandbox.
SERVER_CA_BUNDLE = "/etc/stagectl-sandbox/acme-api-ca.pem"
_CA_IN_CONTAINER = "/run/pebble/api-ca.pem"
READY_TIMEOUT = 30.0
RESOLVE_TIMEOUT = 20.0
#: Where `refuse` points a name: the ACME container's own loopback, where nothing serves HTTP.
_NOWHERE = "127.0.0.1"
#: The domain whose ``_acme-challenge`` name takes DNS-01 updates: the sandbox's
#: (`stagectl.sandbox.environment.SANDBOX_DOMAIN`, which imports this module).
DNS01_DOMAIN = "sandbox.test"
#: The zone BIND serves in the ACME container: DNS-01 for DNS01_DOMAIN and ``*.DNS01_DOMAIN``.
DNS01_ZONE = f"_acme-challenge.{DNS01_DOMAIN}"
DNS01_PORT = 53
#: The TSIG key (BIND's syntax) made at container start; it never leaves the container but
#: through `dns01_credentials`.
_DNS01_KEY_IN_CONTAINER = "/run/pebble/dns01.key"


@dataclass(frozen=True)
class AcmeServer:
    name: str
    network: str
    #: The ACME server's address on the shared network.
    ip: str
    #: The sandbox server's address on that network: what every name resolves to for pebble.
    server_ip: str

    @property
    def directory(self) -> str:
        """`certificates.acme_directory` for the sandbox's environment."""
        return f"https://{self.ip}:{API_PORT}/dir"

    @property
    def ca_bundle(self) -> str:
        """`certificates.acme_ca_bundle`: the ACME API's CA, on the server."""
        return SERVER_CA_BUNDLE


def container_name(sandbox: str) -> str:
    return f"{sandbox}-acme"


def _network_ip(data: dict[str, Any], network: str) -> str:
    networks = data["NetworkSettings"].get("Networks") or {}
    entry = networks.get(network) or {}
    return str(entry.get("IPAddress") or "")


def _exec(name: str, *args: str, input_text: str | None = None, check: bool = True) -> str:
    extra = ["-i"] if input_text is not None else []
    return docker_cli.run("exec", *extra, name, *args, input_text=input_text, check=check, timeout=60).stdout


def _ensure_network(network: str, sandbox: str) -> None:
    data = docker_cli.inspect("network", network)
    if data is None:
        docker_cli.run("network", "create", "--label", f"{LABEL}={sandbox}", network)
    elif LABEL not in (data.get("Labels") or {}):
        raise SandboxError(
            f"Docker network '{network}' exists but was not made by stagectl",
            hint="pick another sandbox name; stagectl never uses networks it did not create",
        )


def up(sandbox: str, builder: ImageBuilder | None = None) -> AcmeServer:
    """Start the ACME server of a running sandbox (a running, current one is kept), taking
    DNS-01 updates for DNS01_ZONE (`dns01_credentials`)."""
    dns01_env = f"ACME_DNS01_ZONE={DNS01_ZONE}"
    builder = builder or ImageBuilder(out=lambda _line: None)
    try:
        builder.build(["pebble"])
    except BuildError as exc:
        raise SandboxImageError(f"cannot build the ACME server image: {exc}") from None
    name = network = container_name(sandbox)
    server = docker_cli.inspect("container", sandbox)
    if server is None:
        raise SandboxError(f"no sandbox named '{sandbox}' is running", hint="start one: `stagectl sandbox up`")
    _ensure_network(network, sandbox)
    if not _network_ip(server, network):
        docker_cli.run("network", "connect", network, sandbox)
        server = docker_cli.inspect("container", sandbox) or server
    server_ip = _network_ip(server, network)
    existing = docker_cli.inspect("container", name)
    if existing is not None and LABEL not in (existing["Config"].get("Labels") or {}):
        raise SandboxError(
            f"container '{name}' exists but was not made by stagectl",
            hint="pick another sandbox name; stagectl never changes containers it did not create",
        )
    # A running one is kept: certbot's renewal configurations on the server name its address,
    # and the certificates it issued chain to its root, which a new one would not know.
    current = (
        existing is not None
        and existing["State"].get("Running")
        and existing["Config"]["Image"] == builder.ref("pebble")
        and f"ACME_SERVER_IP={server_ip}" in (existing["Config"].get("Env") or [])
        and dns01_env in (existing["Config"].get("Env") or [])
    )
    if not current:
        if existing is not None:
            docker_cli.run("rm", "-f", name)
        docker_cli.run(
            "run", "-d", "--name", name, "--hostname", name, "--network", network,
            "--label", f"{LABEL}={sandbox}", "--memory", "128m",
            "-e", f"ACME_SERVER_IP={server_ip}", "-e", dns01_env, builder.ref("pebble"),
        )  # fmt: skip
    data = docker_cli.inspect("container", name)
    ip = _network_ip(data, network) if data else ""
    acme = AcmeServer(name=name, network=network, ip=ip, server_ip=server_ip)
    _wait_ready(acme)
    ca = _exec(name, "cat", _CA_IN_CONTAINER)
    _exec(
        sandbox, "sh", "-c",
        f"install -d -m 0755 {SERVER_CA_BUNDLE.rsplit('/', 1)[0]} && cat > {SERVER_CA_BUNDLE}",
        input_text=ca,
    )  # fmt: skip
    return acme


def _wait_ready(acme: AcmeServer) -> None:
    def answers() -> bool | None:
        directory = ["curl", "-sSf", "--cacert", _CA_IN_CONTAINER, acme.directory]
        return docker_cli.run("exec", acme.name, *directory, check=False).ok or None

    def not_ready() -> SandboxError:
        logs = docker_cli.run("logs", "--tail", "20", acme.name, check=False)
        return SandboxError(
            f"the sandbox's ACME server {acme.name} did not answer on {acme.directory} within "
            f"{READY_TIMEOUT:.0f}s:\n{logs.output}"
        )

    wait_for(answers, timeout=READY_TIMEOUT, interval=0.5, on_timeout=not_ready)


def root_ca(sandbox: str) -> str:
    """Pebble's root certificate (PEM), which signs every certificate it issues; made anew at
    each start of the ACME server."""
    return _exec(container_name(sandbox), "curl", "-sSfk", f"https://127.0.0.1:{MANAGEMENT_PORT}/roots/0")


def refuse(sandbox: str, domain: str) -> None:
    """Make the ACME server's validations of DOMAIN fail (its DNS answers with an address where
    nothing listens), as a name pointing elsewhere would at Let's Encrypt. Returns once the
    resolver pebble asks gives that answer."""
    body = json.dumps({"host": f"{domain}.", "addresses": [_NOWHERE]})
    _dns_management(sandbox, "add-a", body)
    _wait_resolved(sandbox, domain, lambda addresses: addresses == [_NOWHERE])


def accept(sandbox: str, domain: str) -> None:
    """Undo `refuse`: DOMAIN resolves to the sandbox server again (once this returns, for pebble
    too)."""
    _dns_management(sandbox, "clear-a", json.dumps({"host": f"{domain}."}))
    _wait_resolved(sandbox, domain, lambda addresses: bool(addresses) and _NOWHERE not in addresses)


def _wait_resolved(sandbox: str, domain: str, wanted: Callable[[list[str]], bool]) -> None:
    """Wait until the ACME container's own DNS (the one pebble asks) answers DOMAIN's A records
    as WANTED: an override reaches challtestsrv at once, but a validation that still saw the
    old answer would make a test of a refused name pass or fail by chance."""
    seen: list[str] = []

    def resolved() -> bool | None:
        out = docker_cli.run(
            "exec", container_name(sandbox),
            "dig", "+short", "+time=1", "+tries=1", "@127.0.0.1", "-p", str(DNS01_PORT), "A", domain,
            check=False, timeout=30,
        ).stdout  # fmt: skip
        seen[:] = [line for line in out.split() if line and not line.startswith(";")]
        return wanted(seen) or None

    def stale() -> SandboxError:
        return SandboxError(f"the sandbox's ACME DNS still answers {domain} with {seen or 'nothing'}")

    wait_for(resolved, timeout=RESOLVE_TIMEOUT, interval=0.5, on_timeout=stale)


def dns01_credentials(sandbox: str) -> dict[str, str]:
    """The settings of certbot's dns-rfc2136 credentials file (INI keys) for this ACME server's
    BIND: its address on the sandbox's network (which the server reaches), port, and the TSIG
    key made at its start. The secret is a credential: write it to a file of mode 0600, never to
    a log or the terminal. Raises SandboxError when the ACME server is not running or has no
    DNS-01 zone (started before it had one: `up` replaces it)."""
    name = network = container_name(sandbox)
    data = docker_cli.inspect("container", name)
    if data is None or not data["State"].get("Running"):
        raise SandboxError(
            f"the ACME server of sandbox '{sandbox}' is not running",
            hint="it starts with `stagectl sandbox up`",
        )
    ip = _network_ip(data, network)
    key = docker_cli.run("exec", name, "cat", _DNS01_KEY_IN_CONTAINER, check=False, timeout=60)
    if not ip or not key.ok:
        raise SandboxError(
            f"the ACME server {name} takes no DNS-01 updates (started without a DNS-01 zone)",
            hint="restart it: `stagectl sandbox up`",
        )
    # tsig-keygen's output: key "NAME" { algorithm hmac-sha256; secret "BASE64"; };
    key_name = re.search(r'^\s*key\s+"([^"]+)"', key.stdout, re.MULTILINE)
    algorithm = re.search(r"^\s*algorithm\s+([A-Za-z0-9-]+)\s*;", key.stdout, re.MULTILINE)
    secret = re.search(r'^\s*secret\s+"([A-Za-z0-9+/=]+)"\s*;', key.stdout, re.MULTILINE)
    if not (key_name and algorithm and secret):
        # Not the text: it holds the secret.
        raise SandboxError(f"cannot read the TSIG key {_DNS01_KEY_IN_CONTAINER} in {name}")
    return {
        "dns_rfc2136_server": ip,
        "dns_rfc2136_port": str(DNS01_PORT),
        "dns_rfc2136_name": key_name.group(1),
        "dns_rfc2136_secret": secret.group(1),
        "dns_rfc2136_algorithm": algorithm.group(1).upper(),
    }


def txt_records(sandbox: str, name: str) -> list[str]:
    """The TXT records of NAME as pebble sees them (asked of the ACME container's own DNS):
    one string per record, its character strings joined (dig's \\DDD escapes kept). A name
    with none, or one BIND cannot resolve, gives []."""
    out = docker_cli.run(
        "exec", container_name(sandbox),
        "dig", "+short", "+time=2", "+tries=2", "@127.0.0.1", "-p", str(DNS01_PORT), "TXT", name,
        timeout=60,
    ).stdout  # fmt: skip
    lines = [line for line in out.splitlines() if line and not line.startswith(";")]
    return ["".join(shlex.split(line)) for line in lines]


def _dns_management(sandbox: str, path: str, body: str) -> None:
    _exec(
        container_name(sandbox), "curl", "-sSf", "-X", "POST", "--data", body,
        f"http://127.0.0.1:{DNS_MANAGEMENT_PORT}/{path}",
    )  # fmt: skip


def down(sandbox: str) -> None:
    """Remove the ACME server and its network; missing pieces are no error."""
    name = network = container_name(sandbox)
    data = docker_cli.inspect("container", name)
    if data is not None and LABEL in (data["Config"].get("Labels") or {}):
        docker_cli.run("rm", "-f", name)
    net = docker_cli.inspect("network", network)
    if net is not None and LABEL in (net.get("Labels") or {}):
        docker_cli.run("network", "disconnect", "--force", network, sandbox, check=False)
        docker_cli.run("network", "rm", network, check=False)
