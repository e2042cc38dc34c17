"""Docker Compose files: `docker compose config -q` (Compose v2's own schema and interpolation)
plus stagectl's policy for every service (restart, memory limit, log rotation, healthcheck, and
no port published past the firewall).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stagectl.errors import ToolMissing
from stagectl.validators.base import Finding, Severity, as_checks, missing_check, require_tool, run

if TYPE_CHECKING:
    from stagectl.render import RenderedFile
    from stagectl.validate import Check

DOCKER_PACKAGE = "docker.io"
COMPOSE_PACKAGE = "docker-compose (Compose v2, from Debian 13: scripts/testbed-setup.sh validators)"
# The only ports a stagectl server publishes on every address (invariant 5).
PUBLIC_PORTS = (80, 443)


@functools.lru_cache(maxsize=8)
def _is_compose_v2(docker: str) -> bool:
    """Asked once per process: a plan checks one compose file per project."""
    version = run([docker, "compose", "version", "--short"])
    return version.returncode == 0 and version.output.lstrip("v").startswith("2.")


def check(path: Path) -> list[Finding]:
    """`docker compose config -q`: the file as Compose v2 itself reads it. Needs no daemon."""
    docker = require_tool("docker", DOCKER_PACKAGE)
    if not _is_compose_v2(docker):
        raise ToolMissing("docker compose", COMPOSE_PACKAGE)
    path = path.resolve()
    result = run(
        [docker, "compose", "--project-directory", str(path.parent), "-f", str(path), "config", "-q"],
        cwd=path.parent,
    )
    if result.returncode == 0:
        return []
    return [Finding("docker compose", str(path), result.output or f"exit {result.returncode}")]


def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _published_ports(spec: Any) -> list[tuple[str, str]]:
    """(host address or "", published port or "random") of one `ports` entry."""
    if isinstance(spec, dict):
        published = spec.get("published")
        return [(str(spec.get("host_ip") or ""), str(published))] if published is not None else []
    text = str(spec).split("/", 1)[0]
    host_ip = ""
    if text.startswith("["):  # "[::1]:8080:80"
        host_ip, _, text = text[1:].partition("]:")
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, published = parts[0], parts[1]
    elif len(parts) == 2:
        published = parts[0]
    else:
        # "8080" alone publishes the port on a random host port of every address.
        published = "random"
    return [(host_ip, published)]


def check_policy(path: Path, *, public_ports: Collection[int] = PUBLIC_PORTS) -> list[Finding]:
    """stagectl's rules for every service of a stack, beyond what Compose validates."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        return [Finding("compose policy", str(path), f"not valid YAML: {exc}")]
    findings: list[Finding] = []

    def problem(service: str, message: str, severity: Severity = "error") -> None:
        findings.append(Finding("compose policy", str(path), f"service {service}: {message}", severity))

    services = data.get("services") or {}
    for name, service in services.items():
        service = service or {}
        if service.get("restart") not in ("unless-stopped", "always"):
            problem(name, "no `restart: unless-stopped`: it would stay down after a crash or a reboot")
        memory = service.get("mem_limit") or (
            ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
        ).get("memory")
        if not memory:
            problem(name, "no memory limit (mem_limit): one container could exhaust the server")
        logging = service.get("logging") or {}
        options = logging.get("options") or {}
        if logging.get("driver") not in ("json-file", "local") or (
            logging.get("driver") == "json-file" and "max-size" not in options
        ):
            problem(name, "no log rotation (logging: json-file with max-size): logs could fill the disk")
        if "healthcheck" not in service:
            problem(name, "no healthcheck: Docker cannot tell a hung service from a healthy one")
        if service.get("network_mode") == "host":
            problem(name, "network_mode: host exposes every port the service opens past the firewall")
        if service.get("privileged"):
            problem(name, "privileged: grants every capability and device of the host", "warning")
        for spec in service.get("ports") or []:
            for host_ip, published in _published_ports(spec):
                if _is_loopback(host_ip):
                    continue
                if published.isdigit() and int(published) in public_ports:
                    continue
                problem(
                    name,
                    f"publishes port {published} on every address ({spec!r}): Docker's iptables "
                    "rules bypass the firewall; bind it to 127.0.0.1",
                )
    return findings


def check_file(file: RenderedFile) -> list[Check]:
    checks = as_checks(check_policy(file.local), tool="compose policy", target=file.dest)
    try:
        checks += as_checks(check(file.local), tool="docker compose", target=file.dest)
    except ToolMissing as exc:
        checks.append(missing_check(exc, file.dest))
    return checks
