"""The environment model: every bad input is reported with file, field and reason, all at once."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import get_args

import pytest
import yaml

from stagectl.collection import collection_root
from stagectl.derived import alerting_notes, certificate_lineages
from stagectl.environment import (
    ALL_VARS,
    INVENTORY,
    STAGING_VARS,
    VAULT,
    load_environment,
    record_allocations,
)
from stagectl.errors import EnvironmentInvalid
from stagectl.model import DnsPlugin
from stagectl.vault import decrypt, read_password_file, write_vault
from tests.conftest import EnvFixture


def _edit_yaml(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _projects(data: dict) -> list[dict]:  # type: ignore[type-arg]
    return data["staging"]["vars"]["projects"]


def _problems(env: EnvFixture) -> list[str]:
    with pytest.raises(EnvironmentInvalid) as info:
        load_environment(env.root, vault_password_file=env.vault_password_file)
    return [str(p) for p in info.value.problems]


def test_example_environment_is_valid_with_default_values(example_env: EnvFixture) -> None:
    loaded = load_environment(example_env.root, vault_password_file=example_env.vault_password_file)
    env = loaded.env
    assert env.server_domain == "staging.mdubiel.org"
    ports = {p.name: p.ports.model_dump() for p in env.projects}
    assert ports == {
        "beryl3": {"postgres": 5432, "django": 8000, "redis": 6379},
        "project2": {"postgres": 5433, "django": 8001, "redis": 6380},
    }
    shared = env.settings.shared_services
    assert (shared.grafana.port, shared.prometheus.port, shared.loki.port, shared.alertmanager.port) == (
        3000, 9090, 3100, 9093,
    )
    assert (shared.prometheus.retention, shared.loki.retention) == ("30d", "14d")
    assert env.settings.project_defaults.postgres_max_connections == 100
    assert loaded.allocated == {}
    assert loaded.vault is not None and set(loaded.vault.vault_projects) == {"beryl3", "project2"}


@pytest.mark.parametrize(
    ("rel", "edit", "expected"),
    [
        (INVENTORY, lambda d: d["staging"]["vars"].update(server_domian=d["staging"]["vars"].pop("server_domain")),
         ["inventory/staging.yml: staging.vars.server_domian: unknown key 'server_domian' (did you mean 'server_domain'?)"]),
        (INVENTORY, lambda d: _projects(d)[0]["ports"].update(postgress=1),
         ["staging.vars.projects[0] (name=beryl3).ports.postgress: unknown key 'postgress' (did you mean 'postgres'?)"]),
        (INVENTORY, lambda d: _projects(d)[1].update(name="beryl3"),
         ["projects[1] (name=beryl3).name: project name 'beryl3' is used twice"]),
        (INVENTORY, lambda d: _projects(d)[1].update(domain="beryl3.staging.mdubiel.org"),
         ["projects[1] (name=project2).domain: domain 'beryl3.staging.mdubiel.org' is used twice"]),
        (INVENTORY, lambda d: _projects(d)[1]["ports"].update(redis=6379),
         ["projects[1] (name=project2).ports.redis: port 6379 of project 'project2' is already used by project 'beryl3'"]),
        (INVENTORY, lambda d: _projects(d)[1]["ports"].update(django=9090),
         ["ports.django: port 9090 of project 'project2' is already used by the shared service 'prometheus'"]),
        (INVENTORY, lambda d: _projects(d)[1].update(name="Project_2"),
         ["projects[1] (name=Project_2).name: 'Project_2' is not a valid project name"]),
        (INVENTORY, lambda d: _projects(d)[1].update(name="2fast"),
         ["'2fast' is not a valid project name"]),
        (INVENTORY, lambda d: _projects(d)[0].update(domain="beryl3..mdubiel.org"),
         ["projects[0] (name=beryl3).domain: 'beryl3..mdubiel.org' is not a valid domain name"]),
        (INVENTORY, lambda d: _projects(d)[0]["ports"].update(django="eighty"),
         ["ports.django: Input should be a valid integer"]),
        (ALL_VARS, lambda d: d["shared_services"]["prometheus"].update(retention="30 days"),
         ["group_vars/all.yml: shared_services.prometheus.retention: '30 days' is not a duration"]),
        (ALL_VARS, lambda d: d["shared_services"]["loki"].update(image="grafana/loki"),
         ["shared_services.loki.image: 'grafana/loki' is not a pinned image reference"]),
        (ALL_VARS, lambda d: d.update(prometheus_retension="30d"),
         ["group_vars/all.yml: prometheus_retension: unknown key 'prometheus_retension'"]),
        (STAGING_VARS, lambda d: d.update(alerting={"webhook_urls": ["hooks.example.org/alert"]}),
         ["group_vars/staging.yml: alerting.webhook_urls[0]: 'hooks.example.org/alert' is not a webhook URL"]),
        (STAGING_VARS, lambda d: d["certificates"].update(acme_directory="acme.example.org/directory"),
         [("group_vars/staging.yml: certificates.acme_directory: 'acme.example.org/directory' is not an ACME "
          "directory URL: write the whole address with http:// or https://, e.g. https://acme-v02")]),
        (STAGING_VARS, lambda d: d.update(monitoring={"probe_hosts": {"beryl3.staging.mdubiel.org": "the server"}}),
         ["monitoring.probe_hosts.beryl3.staging.mdubiel.org: 'the server' is not an IP address"]),
    ],
)
def test_bad_input_names_file_and_field(example_env: EnvFixture, rel: str, edit, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    _edit_yaml(example_env.root / rel, edit)
    problems = "\n".join(_problems(example_env))
    for text in expected:
        assert text in problems


def test_all_problems_reported_at_once(example_env: EnvFixture) -> None:
    def edit(d: dict) -> None:  # type: ignore[type-arg]
        d["staging"]["vars"]["server_domian"] = d["staging"]["vars"].pop("server_domain")
        _projects(d)[1]["ports"]["postgres"] = 5432

    _edit_yaml(example_env.root / INVENTORY, edit)
    _edit_yaml(example_env.root / ALL_VARS, lambda d: d["shared_services"]["loki"].update(retention="two weeks"))
    problems = _problems(example_env)
    assert len(problems) == 4, problems  # missing + unknown domain key, port clash, duration
    assert any("port 5432" in p for p in problems)
    assert any("two weeks" in p for p in problems)


def test_yaml_syntax_error_names_line(example_env: EnvFixture) -> None:
    path = example_env.root / INVENTORY
    path.write_text(path.read_text().replace("ref: main", "ref: [main", 1))
    (problem,) = _problems(example_env)
    assert problem.startswith("inventory/staging.yml: line ") and "is not valid YAML" in problem


def test_missing_vault_and_wrong_password(example_env: EnvFixture, tmp_path: Path) -> None:
    (example_env.root / VAULT).unlink()
    assert any("group_vars/vault.yml" in p and "does not exist" in p for p in _problems(example_env))

    other = tmp_path / "other-pass"
    other.write_text("not-the-password\n")
    env = EnvFixture(example_env.root, other)
    write_vault(example_env.root / VAULT, {"x": 1}, read_password_file(example_env.vault_password_file))
    assert any("cannot decrypt" in p for p in _problems(env))


def test_plaintext_vault_is_refused(example_env: EnvFixture) -> None:
    (example_env.root / VAULT).write_text("vault_grafana_admin_password: hunter2hunter2hunter2\n")
    assert any("is not encrypted with ansible-vault" in p for p in _problems(example_env))


def test_project_without_secrets_is_reported(example_env: EnvFixture) -> None:
    password = read_password_file(example_env.vault_password_file)
    data = decrypt(example_env.root / VAULT, password)
    del data["vault_projects"]["project2"]
    write_vault(example_env.root / VAULT, data, password)
    problems = _problems(example_env)
    assert any(
        p.startswith("group_vars/vault.yml: vault_projects.project2: no secrets for project 'project2'")
        and "stagectl secrets generate" in p
        for p in problems
    )


def test_new_project_gets_free_ports_and_nobody_moves(example_env: EnvFixture) -> None:
    inventory = example_env.root / INVENTORY
    # Appended as text, the way a user edits: the file's comments must survive the write-back.
    inventory.write_text(
        inventory.read_text()
        + "    # the new shop\n    - name: shop\n      domain: shop.staging.mdubiel.org\n      repo: /srv/shop\n"
    )
    loaded = load_environment(example_env.root)  # no vault: ports only
    assert loaded.allocated == {"shop": {"postgres": 5434, "django": 8002, "redis": 6381}}
    before = {p.name: p.ports for p in loaded.env.projects if p.name != "shop"}
    record_allocations(example_env.root, loaded.allocated)
    text = inventory.read_text()
    assert text.startswith("# Server and project configuration") and "# the new shop" in text
    assert "name: shop" in text and "postgres: 5434" in text

    # Removing a project moves nothing either: the ports are in the file now.
    _edit_yaml(example_env.root / INVENTORY, lambda d: _projects(d).pop(0))
    after = load_environment(example_env.root)
    assert after.allocated == {}
    ports = {p.name: p.ports.model_dump() for p in after.env.projects}
    assert ports["project2"] == before["project2"].model_dump()
    assert ports["shop"] == {"postgres": 5434, "django": 8002, "redis": 6381}


def test_allocation_skips_ports_in_use(example_env: EnvFixture) -> None:
    def add(d: dict) -> None:  # type: ignore[type-arg]
        _projects(d)[1]["ports"]["django"] = 8002
        _projects(d).append({"name": "shop", "domain": "shop.staging.mdubiel.org", "repo": "/srv/shop",
                             "ports": {"redis": 6381}})

    _edit_yaml(example_env.root / INVENTORY, add)
    loaded = load_environment(example_env.root)
    # 8001 was freed by project2 moving to 8002: the lowest free port is taken.
    assert loaded.allocated == {"shop": {"postgres": 5434, "django": 8001}}


def test_unallocated_ports_are_an_error_without_allocation(example_env: EnvFixture) -> None:
    _edit_yaml(example_env.root / INVENTORY, lambda d: _projects(d)[0].pop("ports"))
    with pytest.raises(EnvironmentInvalid) as info:
        load_environment(example_env.root, allocate=False)
    assert any("ports.postgres: is not set" in str(p) and "stagectl plan" in str(p) for p in info.value.problems)


def test_bad_input_leaves_files_untouched(example_env: EnvFixture) -> None:
    def break_it(d: dict) -> None:  # type: ignore[type-arg]
        _projects(d).append({"name": "shop", "domain": "bad domain", "repo": "/srv/shop"})

    _edit_yaml(example_env.root / INVENTORY, break_it)
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in example_env.root.rglob("*") if p.is_file()}
    _problems(example_env)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in example_env.root.rglob("*") if p.is_file()}
    assert digest == after


def test_app_secret_without_a_vault_value_is_reported(example_env: EnvFixture) -> None:
    def app_secret(data: dict) -> None:  # type: ignore[type-arg]
        _projects(data)[0]["app"] = {"secrets": ["STRIPE_KEY"]}

    _edit_yaml(example_env.root / INVENTORY, app_secret)
    problems = _problems(example_env)
    assert any(
        p.startswith("group_vars/vault.yml: vault_projects.beryl3.app_secrets.STRIPE_KEY:")
        and "lists STRIPE_KEY in app.secrets" in p
        for p in problems
    ), problems

    password = read_password_file(example_env.vault_password_file)
    data = decrypt(example_env.root / VAULT, password)
    data["vault_projects"]["beryl3"]["app_secrets"] = {"STRIPE_KEY": "sk_test_value"}
    write_vault(example_env.root / VAULT, data, password)
    load_environment(example_env.root, vault_password_file=example_env.vault_password_file)


def test_alerting_without_a_receiver_is_noted(example_env: EnvFixture) -> None:
    loaded = load_environment(example_env.root, vault_password_file=example_env.vault_password_file)
    notes = alerting_notes(loaded.env)
    assert len(notes) == 1 and "alerts fire but reach nobody" in notes[0], notes

    def webhook(data: dict) -> None:  # type: ignore[type-arg]
        data["alerting"]["webhook_urls"] = ["https://hooks.example.org/alertmanager"]

    _edit_yaml(example_env.root / STAGING_VARS, webhook)
    loaded = load_environment(example_env.root, vault_password_file=example_env.vault_password_file)
    assert alerting_notes(loaded.env) == []


def test_the_wildcard_serves_only_names_one_label_under_the_servers_domain() -> None:
    names = ["a.staging.example.org", "staging.example.org", "x.a.staging.example.org", "b.other.org",
             "wildcard.staging.example.org"]
    assert certificate_lineages(names, "staging.example.org", wildcard=True) == {
        "a.staging.example.org": "wildcard.staging.example.org",
        "staging.example.org": "staging.example.org",
        "x.a.staging.example.org": "x.a.staging.example.org",
        "b.other.org": "b.other.org",
        "wildcard.staging.example.org": "wildcard.staging.example.org",
    }
    assert certificate_lineages(names, "staging.example.org", wildcard=False) == {n: n for n in names}


def test_the_role_knows_every_dns_plugin_the_model_accepts() -> None:
    role_vars = yaml.safe_load((collection_root() / "roles/certificates/vars/main.yml").read_text())
    assert role_vars["__certificates_dns_plugins"] == list(get_args(DnsPlugin))
