"""`stagectl certs status` and `stagectl certs renew`: the certificate of every public name, read
from the server (playbook certs-status, read-only), and certbot's renewals (playbook certs-renew).

The playbooks write what they found as JSON per host; this module turns that into typed results.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stagectl.derived import Derived, derive
from stagectl.environment import load_environment
from stagectl.errors import StagectlError
from stagectl.runner import ProgressCallback, run_reporting_playbook
from stagectl.status import CERTIFICATE_MIN_DAYS

PLACEHOLDER_MARKER = "STAGECTL-PLACEHOLDER"

#: certbot: a lineage (renewal configuration) of its own; placeholder: the self-signed stand-in
#: made until certbot issues; selfsigned: the selfsigned provider's; other: put there by hand.
Kind = Literal["certbot", "placeholder", "selfsigned", "other", "missing"]


class CertsError(StagectlError):
    """A certs command could not do what was asked (an unknown name, no certbot certificate)."""


@dataclass(frozen=True)
class CertificateState:
    host: str
    name: str
    kind: Kind
    #: certbot's lineage (<live_dir>/<lineage>/) that serves the name: its own, or the wildcard's.
    lineage: str = ""
    issuer: str = ""
    not_after: datetime.datetime | None = None
    serial: str = ""
    error: str = ""

    @property
    def days_left(self) -> float | None:
        if self.not_after is None:
            return None
        return (self.not_after - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400

    @property
    def ok(self) -> bool:
        days = self.days_left
        return self.kind != "missing" and not self.error and days is not None and days >= CERTIFICATE_MIN_DAYS


class CertsReport(list[CertificateState]):
    seconds: float = 0.0
    #: Hosts whose certificates could not be read, with why.
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self) and not self.errors and all(c.ok for c in self)


def _asn1_time(value: str) -> datetime.datetime | None:
    """x509_certificate_info's not_after: ASN.1 GeneralizedTime, e.g. 20270305120000Z."""
    try:
        return datetime.datetime.strptime(value, "%Y%m%d%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        return None


def _issuer(issuer: Any) -> str:
    if isinstance(issuer, dict):
        return str(issuer.get("commonName") or issuer.get("organizationName") or "")
    return str(issuer or "")


def host_certificates(host: str, findings: dict[str, Any], provider: str) -> list[CertificateState]:
    """One host's findings (playbook certs-status) as one state per public name."""
    live = str(findings.get("live_dir") or "/etc/letsencrypt/live")
    paths = set(findings.get("paths") or [])
    renewal = f"{live.rsplit('/', 1)[0]}/renewal"
    read = {str(c.get("name")): c for c in findings.get("certificates") or [] if isinstance(c, dict)}
    # Per name, certbot's lineage that serves it: its own, or the wildcard's.
    lineage_of = findings.get("lineages") or {}
    states = []
    for name in findings.get("names") or []:
        lineage = str(lineage_of.get(name) or name)
        kind: Kind
        if f"{live}/{lineage}/fullchain.pem" not in paths:
            kind = "missing"
        elif f"{renewal}/{lineage}.conf" in paths:
            kind = "certbot"
        elif f"{live}/{lineage}/{PLACEHOLDER_MARKER}" in paths:
            kind = "placeholder"
        else:
            kind = "selfsigned" if provider == "selfsigned" else "other"
        info = read.get(name, {})
        states.append(
            CertificateState(
                host=host,
                name=name,
                kind=kind,
                lineage=lineage,
                issuer=_issuer(info.get("issuer")),
                not_after=_asn1_time(str(info.get("not_after") or "")),
                serial=str(info.get("serial") or ""),
                error=str(info.get("error") or ""),
            )
        )
    return states


def run_certs_status(
    root: Path, vault_password_file: Path, on_progress: ProgressCallback | None = None
) -> CertsReport:
    """Read the certificate of every public name on every host. Raises EnvironmentInvalid or
    VaultError (StagectlError) when the environment itself is wrong."""
    started = time.monotonic()
    root = root.resolve()  # ansible-runner changes directory
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    provider = loaded.env.staging.certificates.provider
    hosts = list(loaded.env.inventory.staging.hosts)
    run, findings = run_reporting_playbook(
        "certs-status", root, vault_password_file, hosts,
        out_variable="stagectl_certs_out", on_progress=on_progress,
    )  # fmt: skip
    report = CertsReport()
    errors = []
    for host in hosts:
        if host in findings:
            report.extend(host_certificates(host, findings[host], provider))
        else:
            errors.append(f"could not read the certificates of {host}: {run.failure_detail(host)}")
    report.errors = tuple(errors)
    report.seconds = time.monotonic() - started
    return report


# --- renewal ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RenewOutcome:
    host: str
    name: str
    #: renewed, not-due (certbot found it not due yet) or failed.
    result: Literal["renewed", "not-due", "failed"]
    #: certbot's own words on a failure: what went wrong, for which domain.
    detail: str = ""


class RenewReport(list[RenewOutcome]):
    seconds: float = 0.0
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and all(o.result != "failed" for o in self)


_NOISE = ("Saving debug log", "Ask for help", "See the logfile", "- - - -", "Processing ")


def renew_outcomes(host: str, outcome: list[dict[str, Any]]) -> list[RenewOutcome]:
    """One host's outcome (playbook certs-renew) as one result per name."""
    results = []
    for entry in outcome:
        name = str(entry.get("name") or "")
        lines = [str(line).strip() for line in entry.get("output") or []]
        if entry.get("rc") != 0:
            detail = " ".join(line for line in lines if line and not line.startswith(_NOISE))
            results.append(RenewOutcome(host, name, "failed", detail or f"certbot exited {entry.get('rc')}"))
        else:
            results.append(RenewOutcome(host, name, "renewed" if entry.get("renewed") else "not-due"))
    return results


def _known_names(model: Derived) -> list[str]:
    return sorted({record.name for record in model.dns_records})


def run_certs_renew(
    root: Path,
    vault_password_file: Path,
    names: Sequence[str] = (),
    *,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RenewReport:
    """certbot renews NAMES (every public name when empty) that are due, or all of them with
    `force`. Raises CertsError for a name that is not the server's or a provider certbot does not
    serve (nothing is run then), EnvironmentInvalid/VaultError for a broken environment."""
    started = time.monotonic()
    root = root.resolve()
    loaded = load_environment(root, vault_password_file=vault_password_file, allocate=False)
    model = derive(loaded.env)
    known = _known_names(model)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise CertsError(
            f"{', '.join(unknown)}: not a public name of this server",
            hint=f"the names (`stagectl dns`): {', '.join(known)}",
        )
    provider = loaded.env.staging.certificates.provider
    if provider != "letsencrypt":
        raise CertsError(
            f"group_vars/staging.yml: certificates.provider is {provider}: certbot renews only the "
            "letsencrypt provider's certificates",
            hint="a deploy renews self-signed certificates when fewer than 30 days are left",
        )
    hosts = list(loaded.env.inventory.staging.hosts)
    extravars: dict[str, Any] = {"stagectl_certs_names": list(names), "stagectl_certs_force": force}
    run, outcome = run_reporting_playbook(
        "certs-renew", root, vault_password_file, hosts,
        out_variable="stagectl_certs_out", extravars=extravars, on_progress=on_progress,
    )  # fmt: skip
    report = RenewReport()
    errors = []
    for host in hosts:
        if host in outcome:
            report.extend(renew_outcomes(host, outcome[host].get("results") or []))
        else:
            errors.append(f"{host}: {run.failure_detail(host)}")
    report.errors = tuple(errors)
    report.seconds = time.monotonic() - started
    return report


__all__ = [
    "CertificateState",
    "CertsError",
    "CertsReport",
    "RenewOutcome",
    "RenewReport",
    "host_certificates",
    "renew_outcomes",
    "run_certs_renew",
    "run_certs_status",
]
