"""The sandbox's ACME server: Debian's pebble, so that the `letsencrypt` provider (certbot,
HTTP-01 on the main nginx's webroot) runs end to end with nothing leaving the machine.

It runs in its own small container (image ``stagectl-sandbox/pebble``, built from the Debian
base like the stand-ins) on a Docker network shared with the sandbox server only. Its DNS
(pebble-challtestsrv) answers every name with the server's address on that network, so pebble's
HTTP-01 validations reach the main nginx on the server's port 80 as Let's Encrypt's reach a real
server. The ACME API's TLS certificate is made at container start; its CA is copied onto the
server (SERVER_CA_BUNDLE) for certbot alone (`certificates.acme_ca_bundle`), never into the
server's trust store.
"""

from __future__ import annotations

import json
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
    """Start the ACME server of a running sandbox (a running, current one is kept)."""
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
    )
    if not current:
        if existing is not None:
            docker_cli.run("rm", "-f", name)
        docker_cli.run(
            "run", "-d", "--name", name, "--hostname", name, "--network", network,
            "--label", f"{LABEL}={sandbox}", "--memory", "128m",
            "-e", f"ACME_SERVER_IP={server_ip}", builder.ref("pebble"),
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
    nothing listens), as a name pointing elsewhere would at Let's Encrypt."""
    body = json.dumps({"host": f"{domain}.", "addresses": ["127.0.0.1"]})
    _dns_management(sandbox, "add-a", body)


def accept(sandbox: str, domain: str) -> None:
    """Undo `refuse`: DOMAIN resolves to the sandbox server again."""
    _dns_management(sandbox, "clear-a", json.dumps({"host": f"{domain}."}))


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
