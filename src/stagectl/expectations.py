"""What a healthy server runs, publishes and resolves, from the derived `stagectl` variable.

doctor judges a server against it, and status reads its stack list: both ask the same question
(is every service the environment names running and healthy), so they share one answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stagectl.derived import SHARED_PROJECT, Derived
from stagectl.environment import ALL_VARS, INVENTORY

#: Compose service names of the shared stack where they are not the setting's key with '-'.
#: nginx_exporter is "nginx-edge-exporter" so that it does not share a DNS alias with the
#: projects' own nginx-exporter services on the metrics networks Prometheus joins.
SHARED_SERVICE_NAMES = {"nginx_exporter": "nginx-edge-exporter"}


PUBLIC_PORTS = (80, 443)


@dataclass(frozen=True)
class PortNeed:
    """A host port stagectl needs on the server, and which Compose service should publish it."""

    port: int
    #: 80/443 are published on every address; every other port on 127.0.0.1 only.
    public: bool
    project: str
    service: str
    #: Where to change it: the file and the field.
    setting: str

    @property
    def label(self) -> str:
        address = "*" if self.public else "127.0.0.1"
        return f"{address}:{self.port} ({self.project} {self.service})"


@dataclass(frozen=True)
class ExpectedService:
    service: str
    #: The container name the compose template sets; "" where Compose names it (shared stack).
    container: str = ""

    @property
    def label(self) -> str:
        return self.container or self.service


@dataclass(frozen=True)
class Expectations:
    ports: tuple[PortNeed, ...]
    #: Compose project -> its services, the shared stack first.
    stacks: dict[str, tuple[ExpectedService, ...]]
    prometheus_enabled: bool
    prometheus_published: bool
    prometheus_port: int
    dns_records: tuple[str, ...]
    #: Project name -> compose service -> container, for fixes that name a container.
    containers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def stack_names(self) -> tuple[str, ...]:
        return tuple(self.stacks)


def _shared_service_name(key: str) -> str:
    return SHARED_SERVICE_NAMES.get(key, key.replace("_", "-"))


def expectations(model: Derived) -> Expectations:
    """What a healthy server runs and listens on, from the derived environment."""
    enabled = {key: svc for key, svc in model.shared if svc.enabled}
    ports: list[PortNeed] = []
    if "nginx" in enabled:
        ports += [
            PortNeed(port, True, SHARED_PROJECT, "nginx", "the public web ports (fixed)")
            for port in PUBLIC_PORTS
        ]
    for key, svc in enabled.items():
        if svc.published and svc.port:
            ports.append(
                PortNeed(
                    svc.port,
                    False,
                    SHARED_PROJECT,
                    _shared_service_name(key),
                    f"{ALL_VARS}: shared_services.{key}.port",
                )
            )
    stacks: dict[str, tuple[ExpectedService, ...]] = {
        SHARED_PROJECT: tuple(ExpectedService(_shared_service_name(key)) for key in enabled)
    }
    containers: dict[str, dict[str, str]] = {}
    for project in model.projects:
        name = project.name
        for kind, port in project.ports:
            if port:
                ports.append(
                    PortNeed(
                        port, False, name, kind, f"{INVENTORY}: projects (name={name}) ports.{kind}"
                    )
                )
        by_service = {
            service.replace("_", "-"): container
            for service, container in project.containers.items()
        }
        containers[name] = by_service
        stacks[project.compose_project] = tuple(
            ExpectedService(service, container) for service, container in by_service.items()
        )
    prometheus = model.shared.prometheus
    return Expectations(
        ports=tuple(ports),
        stacks=stacks,
        prometheus_enabled=prometheus.enabled,
        prometheus_published=prometheus.published,
        prometheus_port=prometheus.port or 9090,
        dns_records=tuple(record.name for record in model.dns_records),
        containers=containers,
    )
