"""`stagectl project add` and `project remove` at the CLI edge: what is written, what is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from stagectl import vault
from stagectl.cli import app
from stagectl.environment import INVENTORY, VAULT, load_environment
from tests.conftest import EnvFixture
from tests.unit.test_source import django_files, write_tree

runner = CliRunner()
COMMENT = "# hand-written: keep me\n"


def _app_tree(root: Path) -> Path:
    return write_tree(root, {
        **django_files(),
        "requirements.txt": "Django==5.2\ngunicorn\n",
        "Procfile": "web: gunicorn mysite.wsgi\nworker: python manage.py qcluster\n",
        "mysite/urls.py": 'urlpatterns = [path("healthz", v)]\n',
    })


def _snapshot(env: EnvFixture) -> tuple[bytes, bytes]:
    return (env.root / INVENTORY).read_bytes(), (env.root / VAULT).read_bytes()


def _add(env: EnvFixture, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["project", "add", *args, "--env", str(env.root),
                                 "--vault-password-file", str(env.vault_password_file)])
    return result.exit_code, result.output


def _vault(env: EnvFixture) -> dict:  # type: ignore[type-arg]
    data = vault.decrypt(env.root / VAULT, vault.read_password_file(env.vault_password_file))
    assert isinstance(data, dict)
    return data


def test_add_writes_the_entry_keeps_comments_and_generates_secrets(example_env: EnvFixture, tmp_path: Path) -> None:
    inventory = example_env.root / INVENTORY
    original = inventory.read_text().replace("    - name: project2\n", f"    {COMMENT}    - name: project2\n")
    inventory.write_text(original)
    source = _app_tree(tmp_path / "shop")

    code, output = _add(example_env, "shop", "--repo", str(source))

    assert code == 0, output
    text = inventory.read_text()
    assert text.startswith(original), "the existing entries, comments and layout are kept byte for byte"
    entry = yaml.safe_load(text)["staging"]["vars"]["projects"][-1]
    assert entry["name"] == "shop" and entry["domain"] == "shop.staging.mdubiel.org"
    assert entry["repo"] == str(source.resolve())
    assert entry["ports"] == {"postgres": 5434, "django": 8002, "redis": 6381}
    assert entry["worker"] is True
    assert entry["app"]["builder"] == "pip" and entry["app"]["health_path"] == "/healthz"
    assert entry["app"]["processes"] == {"web": "gunicorn mysite.wsgi", "worker": "python manage.py qcluster"}
    secrets = _vault(example_env)["vault_projects"]["shop"]
    assert len(secrets["postgres_password"]) >= 16 and len(secrets["django_secret_key"]) >= 50
    assert secrets["postgres_password"] not in output
    for expected in ("builder", "pip", "requirements.txt", "mysite.settings", "/healthz",
                     "shop.staging.mdubiel.org  A  192.168.1.14", "next: stagectl deploy --project shop"):
        assert expected in output, expected
    loaded = load_environment(example_env.root, vault_password_file=example_env.vault_password_file, allocate=False)
    assert [p.name for p in loaded.env.projects] == ["beryl3", "project2", "shop"]


def test_add_from_a_git_url_records_the_branch(example_env: EnvFixture, tmp_path: Path) -> None:
    source = _app_tree(tmp_path / "repo")
    git = ["git", "-C", str(source), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "develop"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "app"], check=True)

    code, output = _add(example_env, "shop", "--repo", source.as_uri(), "--domain", "shop.example.org")

    assert code == 0, output
    entry = yaml.safe_load((example_env.root / INVENTORY).read_text())["staging"]["vars"]["projects"][-1]
    assert (entry["repo"], entry["ref"], entry["domain"]) == (source.as_uri(), "develop", "shop.example.org")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["shop", "--repo", "{tmp}/missing"], "--repo {tmp}/missing: no such directory, and not a git URL"),
        (["shop", "--repo", "file://{tmp}/missing.git"], "cannot clone file://{tmp}/missing.git"),
        (["beryl3", "--repo", "{app}"], "project 'beryl3' is already in inventory/staging.yml"),
        (["shop", "--repo", "{app}", "--domain", "project2.staging.mdubiel.org"],
         "domain project2.staging.mdubiel.org is already used by project 'project2'"),
        (["shop", "--repo", "{app}", "--domain", "grafana.staging.mdubiel.org"], "reserved for the shared monitoring"),
        (["shop", "--repo", "{flask}"], "is not a Django project: no manage.py"),
        (["Shop_1", "--repo", "{app}"], "'Shop_1' is not a valid project name"),
        (["shop", "--repo", "{app}", "--domain", "Bad Domain"], "'Bad Domain' is not a valid domain name"),
        (["shop", "--repo", "{app}", "--settings", "nope.settings"], "settings module nope.settings not found"),
    ],
)
def test_add_rejects_bad_input_and_writes_nothing(example_env: EnvFixture, tmp_path: Path, args: list[str],
                                                  expected: str) -> None:
    source = _app_tree(tmp_path / "app")
    flask = write_tree(tmp_path / "flask", {"requirements.txt": "flask\n", "app.py": ""})
    subst = {"tmp": str(tmp_path), "app": str(source), "flask": str(flask)}
    before = _snapshot(example_env)

    code, output = _add(example_env, *(a.format(**subst) for a in args))

    assert code == 2, output
    assert expected.format(**subst) in " ".join(output.split()), output
    assert "Traceback" not in output
    assert _snapshot(example_env) == before
    assert not list((example_env.root / "inventory").glob(".*.tmp"))


@pytest.mark.parametrize(("hosts", "warned"), [
    ('["127.0.0.1", ".railway.app"]', True),
    ('["shop.staging.mdubiel.org"]', False),
    ('[".mdubiel.org"]', False),
    ('os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")', False),
    # Changed at run time: not a fixed list any more.
    ('["127.0.0.1"]\nALLOWED_HOSTS += os.environ.get("HOSTS", "").split()', False),
    ('["127.0.0.1"]\nALLOWED_HOSTS.append(os.environ["HOST"])', False),
    ('["127.0.0.1"]\nif os.environ.get("PUBLIC"):\n    ALLOWED_HOSTS = ["*"]', False),
    ('["127.0.0.1"]\ndef local():\n    ALLOWED_HOSTS = ["*"]', True),
])
def test_add_warns_when_allowed_hosts_shut_out_the_domain(example_env: EnvFixture, tmp_path: Path, hosts: str,
                                                          warned: bool) -> None:
    source = _app_tree(tmp_path / "shop")
    settings = source / "mysite" / "settings.py"
    settings.write_text(settings.read_text() + f"ALLOWED_HOSTS = {hosts}\n")

    code, output = _add(example_env, "shop", "--repo", str(source))

    assert code == 0, output
    flat = " ".join(output.split())
    assert ("ALLOWED_HOSTS in mysite.settings is fixed to" in flat) is warned, output
    if warned:
        assert "without shop.staging.mdubiel.org: Django answers 400" in flat, output


def test_add_warns_when_the_app_asks_for_another_python(example_env: EnvFixture, tmp_path: Path) -> None:
    source = _app_tree(tmp_path / "shop")
    (source / "runtime.txt").write_text("python-3.10.13\n")

    code, output = _add(example_env, "shop", "--repo", str(source))

    assert code == 0, output
    flat = " ".join(output.split())
    assert "app.python is 3.10 but the app image is built on python:3.13-slim-bookworm (Python 3.13)" in flat


def test_add_shows_long_values_whole(example_env: EnvFixture, tmp_path: Path) -> None:
    module = "a_rather_long_company_package.settings.staging_environment"
    source = write_tree(tmp_path / "shop", {**django_files(module=module), "requirements.txt": "Django\n"})

    code, output = _add(example_env, "shop", "--repo", str(source))

    assert code == 0, output
    assert "…" not in output, output
    cells = "".join(line.split("│")[2].strip() for line in output.splitlines() if line.count("│") == 4)
    assert module in cells, output


def test_add_refuses_a_broken_environment(example_env: EnvFixture, tmp_path: Path) -> None:
    inventory = example_env.root / INVENTORY
    inventory.write_text(inventory.read_text().replace("server_domain:", "server_domian:"))
    before = _snapshot(example_env)
    code, output = _add(example_env, "shop", "--repo", str(_app_tree(tmp_path / "app")))
    assert code == 2 and "server_domian: unknown key" in output
    assert _snapshot(example_env) == before


def test_secrets_generate_fills_app_secrets(example_env: EnvFixture) -> None:
    inventory = example_env.root / INVENTORY
    inventory.write_text(inventory.read_text().replace(
        "      worker: false\n    - name: project2", "      worker: false\n      app:\n        secrets: [STRIPE_KEY]\n"
        "    - name: project2"))
    result = runner.invoke(app, ["secrets", "generate", "--env", str(example_env.root),
                                 "--vault-password-file", str(example_env.vault_password_file)])
    assert result.exit_code == 0, result.output
    assert "vault_projects.beryl3.app_secrets.STRIPE_KEY" in result.output
    value = _vault(example_env)["vault_projects"]["beryl3"]["app_secrets"]["STRIPE_KEY"]
    assert len(value) >= 16 and value not in result.output


def test_a_vault_from_before_the_monitoring_role_is_refused_then_completed(example_env: EnvFixture) -> None:
    password = vault.read_password_file(example_env.vault_password_file)
    data = _vault(example_env)
    kept = data["vault_projects"]["beryl3"].pop("postgres_monitor_password")
    vault.write_vault(example_env.root / VAULT, data, password)
    plan = runner.invoke(app, ["plan", "--env", str(example_env.root),
                               "--vault-password-file", str(example_env.vault_password_file)])
    assert plan.exit_code == 2, plan.output
    assert "vault_projects.beryl3.postgres_monitor_password" in plan.output
    assert "stagectl secrets generate" in plan.output
    result = runner.invoke(app, ["secrets", "generate", "--env", str(example_env.root),
                                 "--vault-password-file", str(example_env.vault_password_file)])
    assert result.exit_code == 0, result.output
    assert "vault_projects.beryl3.postgres_monitor_password" in result.output
    after = _vault(example_env)["vault_projects"]["beryl3"]
    assert after["postgres_monitor_password"] not in result.output
    assert after["postgres_monitor_password"] != kept
    assert after["postgres_password"] == data["vault_projects"]["beryl3"]["postgres_password"]
    assert _vault(example_env)["vault_projects"]["project2"] == data["vault_projects"]["project2"]


def test_remove_unknown_project(example_env: EnvFixture) -> None:
    before = _snapshot(example_env)
    result = runner.invoke(app, ["project", "remove", "shop", "--yes", "--env", str(example_env.root),
                                 "--vault-password-file", str(example_env.vault_password_file)])
    assert result.exit_code == 2
    assert "project 'shop' is not in inventory/staging.yml" in result.output
    assert "known projects: beryl3, project2" in result.output
    assert _snapshot(example_env) == before


def test_remove_asks_before_deleting_data_and_stops_on_no(example_env: EnvFixture) -> None:
    before = _snapshot(example_env)
    result = runner.invoke(app, ["project", "remove", "beryl3", "--env", str(example_env.root),
                                 "--vault-password-file", str(example_env.vault_password_file)], input="n\n")
    assert result.exit_code == 1
    assert "Delete beryl3's data and backups" in result.output and "Aborted" in result.output
    assert _snapshot(example_env) == before


def test_remove_requires_a_name() -> None:
    result = runner.invoke(app, ["project", "remove"])
    assert result.exit_code == 2 and "Missing argument" in result.output


def test_remove_entry_undoes_add_byte_for_byte(example_env: EnvFixture, tmp_path: Path) -> None:
    from stagectl.onboard import remove_entry

    inventory = example_env.root / INVENTORY
    inventory.write_text(inventory.read_text().replace("    - name: project2\n", f"    {COMMENT}    - name: project2\n"))
    before = inventory.read_bytes()
    assert _add(example_env, "shop", "--repo", str(_app_tree(tmp_path / "shop")))[0] == 0
    assert "shop" in _vault(example_env)["vault_projects"]

    remove_entry(example_env.root, example_env.vault_password_file, "shop", remove_secrets=False)
    assert inventory.read_bytes() == before
    assert "shop" in _vault(example_env)["vault_projects"], "--keep-data keeps the secrets"

    assert _add(example_env, "shop", "--repo", str(_app_tree(tmp_path / "shop")))[0] == 0
    remove_entry(example_env.root, example_env.vault_password_file, "shop", remove_secrets=True)
    assert inventory.read_bytes() == before
    assert set(_vault(example_env)["vault_projects"]) == {"beryl3", "project2"}


@pytest.mark.parametrize("indent", ["", "  "])
def test_port_write_back_keeps_the_sequence_indentation(tmp_path: Path, indent: str) -> None:
    from stagectl.environment import record_allocations

    text = ("staging:\n  vars:\n    projects:  # mine\n"
            f"    {indent}- name: a\n    {indent}  domain: a.example.org  # keep\n"
            f"    {indent}- name: b\n    {indent}  domain: b.example.org\n")
    (tmp_path / "inventory").mkdir()
    (tmp_path / INVENTORY).write_text(text)
    record_allocations(tmp_path, {"b": {"postgres": 5433}})
    expected = text + f"    {indent}  ports:\n    {indent}    postgres: 5433\n"
    assert (tmp_path / INVENTORY).read_text() == expected
