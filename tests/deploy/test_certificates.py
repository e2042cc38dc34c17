"""Certificates from an ACME server, end to end: the shared sandbox's deploy got every public name
its certificate from the sandbox's pebble by HTTP-01 through the main nginx (certbot, provider
letsencrypt), nginx serves it with a chain that verifies against pebble's root, and a renewal
replaces it.

The TLS handshakes go to the sandbox's HTTPS port on 127.0.0.1 with each name as SNI.
"""

from __future__ import annotations

import datetime
import re
import socket
import ssl
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.derived import Derived, derive
from stagectl.environment import STAGING_VARS, VAULT, load_environment
from stagectl.runner import RunResult
from stagectl.sandbox import acme
from stagectl.vault import decrypt, read_password_file, write_vault
from tests.deploy.conftest import Deployed

LIVE = "/etc/letsencrypt/live"


def _model(deployed: Deployed) -> Derived:
    loaded = load_environment(deployed.root, vault_password_file=deployed.vault_password_file, allocate=False)
    return derive(loaded.env)


def public_names(deployed: Deployed) -> list[str]:
    return sorted({record.name for record in _model(deployed).dns_records})


def https_names(deployed: Deployed) -> list[str]:
    """The names the main nginx has an HTTPS server for: Grafana's only when Grafana runs (the
    sandbox has no Grafana; its name still gets a certificate, for when it does)."""
    model = _model(deployed)
    grafana = model.monitoring_domains["grafana"]
    return [n for n in public_names(deployed) if n != grafana or model.shared.grafana.enabled]


def on_disk(deployed: Deployed, name: str) -> x509.Certificate:
    """The certificate of certbot's live directory for NAME (the leaf: first of the chain)."""
    return x509.load_pem_x509_certificate(deployed.sh(f"cat {LIVE}/{name}/fullchain.pem").encode())


def served(deployed: Deployed, name: str, root_pem: str) -> x509.Certificate:
    """The certificate nginx serves for NAME; the handshake fails unless the chain nginx sends
    verifies against ROOT_PEM and the certificate is for NAME."""
    context = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection(("127.0.0.1", deployed.info.https_port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def certs_cli(deployed: Deployed, *args: str) -> tuple[int, str]:
    env = ["--env", str(deployed.root), "--vault-password-file", str(deployed.vault_password_file)]
    result = CliRunner().invoke(app, ["certs", *args, *env])
    return result.exit_code, result.output


def acme_log(deployed: Deployed) -> str:
    logs = subprocess.run(
        ["docker", "logs", "--tail", "40", acme.container_name(deployed.info.name)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return f"\nthe ACME server's log:\n{logs.stdout}{logs.stderr}"


def issuer(cert: x509.Certificate) -> str:
    return str(cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


@pytest.fixture(scope="module")
def pebble_root(deployed: Deployed) -> str:
    return acme.root_ca(deployed.info.name)


def test_every_public_name_has_a_certificate_from_the_acme_server(deployed: Deployed, pebble_root: str) -> None:
    names = public_names(deployed)
    assert len(names) == 5  # two projects, three monitoring names
    for name in names:
        cert = on_disk(deployed, name)
        assert issuer(cert).startswith("Pebble Intermediate CA"), (name, issuer(cert))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [name]
    # certbot's lineages (live/ links into archive/), no placeholder left anywhere.
    listing = deployed.sh(
        f"for n in {' '.join(names)}; do readlink {LIVE}/$n/fullchain.pem; "
        "test -f /etc/letsencrypt/renewal/$n.conf; done; "
        f"find {LIVE} /etc/letsencrypt/stagectl-placeholders -name STAGECTL-PLACEHOLDER"
    )
    links = listing.split()
    assert len(links) == len(names), listing
    for name, link in zip(names, links, strict=True):
        assert re.fullmatch(rf"\.\./\.\./archive/{re.escape(name)}/fullchain\d+\.pem", link), link


def test_nginx_serves_them_with_a_chain_that_verifies_against_the_acme_servers_root(
    deployed: Deployed, pebble_root: str
) -> None:
    served_names = https_names(deployed)
    assert len(served_names) >= 4, served_names
    for name in served_names:
        assert served(deployed, name, pebble_root).serial_number == on_disk(deployed, name).serial_number, name


def test_renewal_runs_from_a_timer_with_the_nginx_reload_hook(deployed: Deployed) -> None:
    state = deployed.sh(
        "systemctl is-enabled stagectl-certbot-renew.timer; systemctl is-active stagectl-certbot-renew.timer; "
        "systemctl is-enabled certbot.timer || true; "
        "test -x /etc/letsencrypt/renewal-hooks/deploy/stagectl-reload-nginx && echo hook; "
        "systemctl show -P Environment stagectl-certbot-renew.service"
    )
    assert state.split() == [
        "enabled", "active", "disabled", "hook", f"REQUESTS_CA_BUNDLE={acme.SERVER_CA_BUNDLE}",
    ]  # fmt: skip


def test_certs_status_lists_every_name_with_its_issuer_and_days_left(deployed: Deployed) -> None:
    code, output = certs_cli(deployed, "status")
    assert code == 0, output
    rows = [line for line in output.splitlines() if ".sandbox.test" in line]
    assert len(rows) == 5, output
    for name in public_names(deployed):
        row = next(r for r in rows if f"sandbox  {name}  " in r)
        assert "  certbot  issuer: Pebble Intermediate CA" in row, row
        assert f"serial: {on_disk(deployed, name).serial_number}" in row, row
    assert "certificates all well (5 names" in output


def test_forced_renewal_replaces_the_certificate_nginx_serves(deployed: Deployed, pebble_root: str) -> None:
    name = "beryl3.sandbox.test"
    before = served(deployed, name, pebble_root)
    link = f"readlink {LIVE}/{name}/fullchain.pem"
    version = int(re.sub(r"\D", "", deployed.sh(link).rsplit("/", 1)[1]))
    code, output = certs_cli(deployed, "renew", "--name", name, "--force")
    assert code == 0, output
    assert f"sandbox: {name}: renewed, nginx reloaded" in output
    after = served(deployed, name, pebble_root)
    assert after.serial_number != before.serial_number
    assert issuer(after).startswith("Pebble Intermediate CA")
    assert deployed.sh(link).strip() == f"../../archive/{name}/fullchain{version + 1}.pem"
    assert after.serial_number == on_disk(deployed, name).serial_number
    # Not due: a plain renewal leaves every certificate alone.
    code, output = certs_cli(deployed, "renew", "--name", name)
    assert code == 0 and f"sandbox: {name}: not due yet" in output, output
    assert served(deployed, name, pebble_root).serial_number == after.serial_number


def test_a_certificate_close_to_expiry_is_renewed_without_force(deployed: Deployed, pebble_root: str) -> None:
    """certbot, not stagectl, decides what is due: a certificate whose expiry is nearer than its
    lineage's renew_before_expiry. Pebble's certificates last years, so the window is widened
    past this one's expiry instead of waiting for it."""
    name = "project2.sandbox.test"
    before = served(deployed, name, pebble_root)
    days_left = (before.not_valid_after_utc - datetime.datetime.now(datetime.UTC)).days
    conf = f"/etc/letsencrypt/renewal/{name}.conf"
    deployed.sh(f"cp -p {conf} /root/renewal.conf.kept; sed -i '/^renew_before_expiry/d' {conf}; "
                f"sed -i '1i renew_before_expiry = {days_left + 1} days' {conf}")
    try:
        code, output = certs_cli(deployed, "renew", "--name", name)
    finally:
        deployed.sh(f"cp -p /root/renewal.conf.kept {conf}")
    assert code == 0 and f"sandbox: {name}: renewed, nginx reloaded" in output, output
    after = served(deployed, name, pebble_root)
    assert after.serial_number != before.serial_number
    assert after.serial_number == on_disk(deployed, name).serial_number
    # With certbot's own window again (30 days), the new certificate is not due.
    code, output = certs_cli(deployed, "renew", "--name", name)
    assert code == 0 and f"sandbox: {name}: not due yet" in output, output


def test_a_refused_renewal_names_the_domain_and_keeps_the_certificate_serving(
    deployed: Deployed, pebble_root: str
) -> None:
    name = "project2.sandbox.test"
    before = served(deployed, name, pebble_root)
    acme.refuse(deployed.info.name, name)
    try:
        code, output = certs_cli(deployed, "renew", "--name", name, "--force")
    finally:
        acme.accept(deployed.info.name, name)
    # The ACME server's log says which address its validation reached, should it have passed.
    assert code == 1, output + acme_log(deployed)
    assert f"sandbox: {name}: FAILED" in output
    # certbot's reason, as the ACME server gave it.
    assert "certbot: " in output and name in output.split("certbot: ", 1)[1], output
    assert "the current certificates keep serving" in output
    assert served(deployed, name, pebble_root).serial_number == before.serial_number


# --- the wildcard, by DNS-01 ---------------------------------------------------------------------
# Last in this file: it switches the shared sandbox to one `*.sandbox.test` certificate and back.

WILDCARD = "*.sandbox.test"
WILDCARD_LINEAGE = "wildcard.sandbox.test"


@pytest.fixture(scope="module")
def wildcard(deployed: Deployed) -> Iterator[RunResult]:
    """certificates.wildcard with certbot's rfc2136 plugin against the ACME server's BIND, its TSIG
    key in the vault; deployed, and undone (with a deploy) afterwards."""
    staging, vault = deployed.root / STAGING_VARS, deployed.root / VAULT
    saved = {path: path.read_bytes() for path in (staging, vault)}
    data: dict[str, Any] = yaml.safe_load(staging.read_text())
    data["certificates"]["wildcard"] = {"dns_plugin": "rfc2136", "propagation_seconds": 1}
    staging.write_text(yaml.safe_dump(data, sort_keys=False))
    password = read_password_file(deployed.vault_password_file)
    secrets = decrypt(vault, password)
    secrets["vault_certificates_dns_credentials"] = acme.dns01_credentials(deployed.info.name)
    write_vault(vault, secrets, password)
    try:
        yield deployed.redeploy()
    finally:
        for path, content in saved.items():
            path.write_bytes(content)
        restored = deployed.redeploy()
        assert restored.ok, [f.message for f in restored.failures]


def test_the_wildcard_is_issued_by_dns01_and_serves_every_name_under_the_servers_domain(
    deployed: Deployed, wildcard: RunResult, pebble_root: str
) -> None:
    assert wildcard.ok, [f.message for f in wildcard.failures]
    cert = x509.load_pem_x509_certificate(deployed.sh(f"cat {LIVE}/{WILDCARD_LINEAGE}/fullchain.pem").encode())
    assert issuer(cert).startswith("Pebble Intermediate CA")
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [WILDCARD]
    # certbot's lineage, renewed by the same plugin with the credentials file (certbot's mode).
    renewal = deployed.sh(f"cat /etc/letsencrypt/renewal/{WILDCARD_LINEAGE}.conf")
    assert "authenticator = dns-rfc2136" in renewal, renewal
    assert "dns_rfc2136_credentials = /etc/letsencrypt/stagectl-dns-rfc2136.ini" in renewal, renewal
    assert deployed.sh("stat -c '%a %U' /etc/letsencrypt/stagectl-dns-rfc2136.ini").split() == ["600", "root"]
    # The challenge's TXT record is gone again from the zone.
    assert acme.txt_records(deployed.info.name, f"_acme-challenge.{acme.DNS01_DOMAIN}") == []
    for name in https_names(deployed):
        assert served(deployed, name, pebble_root).serial_number == cert.serial_number, name


def test_certs_status_and_renew_follow_the_wildcard(deployed: Deployed, wildcard: RunResult, pebble_root: str) -> None:
    code, output = certs_cli(deployed, "status")
    assert code == 0, output
    assert "certificates all well (5 names" in output
    rows = [line for line in output.splitlines() if ".sandbox.test  certbot" in line]
    assert len(rows) == 5 and all(f"certificate: {WILDCARD_LINEAGE}" in row for row in rows), output
    name = "monitoring.sandbox.test"
    before = served(deployed, name, pebble_root)
    code, output = certs_cli(deployed, "renew", "--name", name, "--force")
    assert code == 0, output
    assert f"sandbox: {WILDCARD}: renewed, nginx reloaded" in output
    after = served(deployed, name, pebble_root)
    assert after.serial_number != before.serial_number
    assert served(deployed, "beryl3.sandbox.test", pebble_root).serial_number == after.serial_number
