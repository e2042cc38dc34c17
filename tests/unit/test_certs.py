"""`stagectl certs`: how the findings of the certs playbooks become per-name states and outcomes,
and the environment rules of private ACME servers."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from stagectl.certs import host_certificates, renew_outcomes
from stagectl.derived import derive
from stagectl.environment import certificate_problems, load_environment
from stagectl.model import Environment
from tests.conftest import EnvFixture

LIVE = "/etc/letsencrypt/live"


def _findings(**certificates: dict[str, Any]) -> dict[str, Any]:
    return {
        "live_dir": LIVE,
        "names": ["a.example.org", "b.example.org", "c.example.org", "d.example.org"],
        "paths": [
            f"{LIVE}/a.example.org/fullchain.pem", "/etc/letsencrypt/renewal/a.example.org.conf",
            f"{LIVE}/b.example.org/fullchain.pem", f"{LIVE}/b.example.org/STAGECTL-PLACEHOLDER",
            f"{LIVE}/c.example.org/fullchain.pem",
        ],
        "certificates": [{"name": name, **info} for name, info in certificates.items()],
    }  # fmt: skip


def _in_days(days: int) -> str:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return when.strftime("%Y%m%d%H%M%SZ")


def test_states_say_who_made_each_certificate_and_how_long_it_lasts() -> None:
    findings = _findings(**{
        "a.example.org": {"issuer": {"commonName": "R11", "organizationName": "Let's Encrypt"},
                          "not_after": _in_days(60), "serial": "1234", "error": ""},
        "b.example.org": {"issuer": {"commonName": "b.example.org"}, "not_after": _in_days(89), "serial": "5"},
        "c.example.org": {"issuer": {"commonName": "Own CA"}, "not_after": _in_days(10), "serial": "6"},
    })  # fmt: skip
    states = {s.name: s for s in host_certificates("web1", findings, "letsencrypt")}
    assert [states[n].kind for n in sorted(states)] == ["certbot", "placeholder", "other", "missing"]
    a = states["a.example.org"]
    assert (a.host, a.issuer, a.serial, a.ok) == ("web1", "R11", "1234", True)
    assert a.days_left is not None and 59 < a.days_left <= 60
    assert not states["c.example.org"].ok  # 10 days: below the alert's 20
    assert not states["d.example.org"].ok and states["d.example.org"].days_left is None


def test_the_selfsigned_provider_owns_certificates_without_certbot_or_marker() -> None:
    findings = _findings(**{"c.example.org": {"issuer": {"commonName": "c.example.org"}, "not_after": _in_days(80)}})
    states = {s.name: s for s in host_certificates("web1", findings, "selfsigned")}
    assert states["c.example.org"].kind == "selfsigned" and states["c.example.org"].ok


def test_a_name_the_wildcard_serves_reads_the_wildcards_lineage() -> None:
    findings = {
        "live_dir": LIVE,
        "names": ["a.example.org", "z.other.org"],
        "lineages": {"a.example.org": "wildcard.example.org", "z.other.org": "z.other.org"},
        "paths": [f"{LIVE}/wildcard.example.org/fullchain.pem", "/etc/letsencrypt/renewal/wildcard.example.org.conf",
                  f"{LIVE}/a.example.org/fullchain.pem"],
        "certificates": [{"name": "a.example.org", "issuer": {"commonName": "R11"}, "not_after": _in_days(60)}],
    }  # fmt: skip
    states = {s.name: s for s in host_certificates("web1", findings, "letsencrypt")}
    wildcard = states["a.example.org"]
    assert (wildcard.kind, wildcard.lineage, wildcard.ok) == ("certbot", "wildcard.example.org", True)
    assert (states["z.other.org"].kind, states["z.other.org"].lineage) == ("missing", "z.other.org")


def test_an_unreadable_certificate_is_not_ok_and_says_why() -> None:
    findings = _findings(**{"a.example.org": {"error": "Error while reading certificate", "not_after": ""}})
    state = next(s for s in host_certificates("web1", findings, "letsencrypt") if s.name == "a.example.org")
    assert (state.ok, state.error, state.not_after) == (False, "Error while reading certificate", None)


def test_renew_outcomes_keep_certbots_reason_without_its_noise() -> None:
    outcomes = renew_outcomes("web1", [
        {"name": "a.example.org", "rc": 0, "renewed": True, "output": ["Congratulations, all renewals succeeded"]},
        {"name": "b.example.org", "rc": 0, "renewed": False, "output": ["No renewals were attempted."]},
        {"name": "c.example.org", "rc": 1, "renewed": False, "output": [
            "Saving debug log to /var/log/letsencrypt/letsencrypt.log",
            "Failed to renew certificate c.example.org with error: Some challenges have failed.",
            "Ask for help or search for solutions at https://community.letsencrypt.org.",
        ]},
    ])  # fmt: skip
    assert [(o.name, o.result) for o in outcomes] == [
        ("a.example.org", "renewed"), ("b.example.org", "not-due"), ("c.example.org", "failed"),
    ]
    assert outcomes[2].detail == "Failed to renew certificate c.example.org with error: Some challenges have failed."


@pytest.fixture
def example_environment(example_env: EnvFixture) -> Environment:
    return load_environment(example_env.root, vault_password_file=example_env.vault_password_file).env


def _with_certificates(env: Environment, **certificates: Any) -> Environment:
    staging = env.staging.model_copy(update={"certificates": env.staging.certificates.model_copy(update=certificates)})
    return env.model_copy(update={"staging": staging})


def test_only_lets_encrypt_production_chains_count_as_publicly_trusted(example_environment: Environment) -> None:
    assert derive(_with_certificates(example_environment, provider="letsencrypt")).certificates.publicly_trusted
    private = _with_certificates(
        example_environment, provider="letsencrypt", acme_directory="https://acme.internal:14000/dir"
    )
    assert not derive(private).certificates.publicly_trusted
    assert not derive(_with_certificates(example_environment, provider="selfsigned")).certificates.publicly_trusted


def test_a_private_acme_server_may_issue_for_special_use_names(example_environment: Environment) -> None:
    domain = example_environment.inventory.staging.vars.model_copy(update={"server_domain": "box.test"})
    inventory = example_environment.inventory.model_copy(
        update={"staging": example_environment.inventory.staging.model_copy(update={"vars": domain})}
    )
    env = example_environment.model_copy(update={"inventory": inventory})
    assert "box.test" in str(certificate_problems(_with_certificates(env, provider="letsencrypt")))
    private = _with_certificates(env, provider="letsencrypt", acme_directory="https://10.0.0.5:14000/dir")
    assert certificate_problems(private) == []


def test_the_sandbox_environment_takes_its_certificates_from_its_acme_server(tmp_path: Path) -> None:
    from stagectl.sandbox.acme import AcmeServer
    from stagectl.sandbox.environment import default_environment_paths, write_sandbox_environment
    from tests.sandbox.test_server import ARCHIVE_IN_SERVER, DEMO_APP, fake_info

    info = fake_info(tmp_path)
    root, password_file = default_environment_paths(info)
    server = AcmeServer(name="stagectl-sandbox-acme", network="stagectl-sandbox-acme", ip="172.30.0.3",
                        server_ip="172.30.0.2")
    write_sandbox_environment(root, info, password_file, DEMO_APP, preload_archives=[ARCHIVE_IN_SERVER], acme=server)
    loaded = load_environment(root, vault_password_file=password_file)
    certificates = loaded.env.staging.certificates
    assert (certificates.provider, certificates.acme_directory, certificates.acme_ca_bundle) == (
        "letsencrypt", "https://172.30.0.3:14000/dir", "/etc/stagectl-sandbox/acme-api-ca.pem",
    )
    # .test names are fine for a private ACME server; the probes skip the chain check.
    assert certificate_problems(loaded.env) == []
    assert not derive(loaded.env).certificates.publicly_trusted
