"""The CLI edge: user mistakes give one clear message and exit 2, never a traceback."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stagectl.cli import app
from stagectl.environment import INVENTORY, VAULT
from tests.conftest import EnvFixture

runner = CliRunner()


def test_init_writes_layout_and_keeps_secrets_in_vault(tmp_path: Path) -> None:
    root, key = tmp_path / "env", tmp_path / "keys" / "pass"
    result = runner.invoke(app, ["init", str(root), "--vault-password-file", str(key)])
    assert result.exit_code == 0, result.output
    for rel in (INVENTORY, "group_vars/all.yml", "group_vars/staging.yml", VAULT, "ansible.cfg"):
        assert (root / rel).is_file(), rel
    assert (root / VAULT).read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    password = key.read_text().strip()
    assert password not in result.output
    plain = "".join(p.read_text() for p in root.rglob("*") if p.is_file() and p.name != "vault.yml")
    assert "<secure" not in plain and password not in plain
    assert "beryl3" in plain and "5433" in plain


def test_init_refuses_to_overwrite(example_env: EnvFixture) -> None:
    before = (example_env.root / VAULT).read_bytes()
    result = runner.invoke(
        app, ["init", str(example_env.root), "--vault-password-file", str(example_env.vault_password_file)]
    )
    assert result.exit_code == 2
    assert "already holds an environment" in result.output and "Traceback" not in result.output
    assert (example_env.root / VAULT).read_bytes() == before


def test_init_refuses_password_file_inside_environment(tmp_path: Path) -> None:
    root = tmp_path / "env"
    result = runner.invoke(app, ["init", str(root), "--vault-password-file", str(root / "pass")])
    assert result.exit_code == 2
    assert "inside the environment directory" in result.output
    assert not (root / INVENTORY).exists()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("server_domain:", "server_domian:", "inventory/staging.yml: staging.vars.server_domian: unknown key"),
        ("postgres: 5433", "postgres: 9090", "already used by the shared service 'prometheus'"),
        ("name: project2", "name: project_2", "'project_2' is not a valid project name"),
    ],
)
def test_plan_rejects_bad_input_without_writing(example_env: EnvFixture, tmp_path: Path, old: str, new: str,
                                                 expected: str) -> None:
    inventory = example_env.root / INVENTORY
    inventory.write_text(inventory.read_text().replace(old, new, 1))
    before = inventory.read_bytes()
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["plan", "--env", str(example_env.root), "--out", str(out),
         "--vault-password-file", str(example_env.vault_password_file)],
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert inventory.read_bytes() == before
    assert not any(out.rglob("*"))  # nothing rendered


def test_plan_with_wrong_vault_password_file(example_env: EnvFixture, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["plan", "--env", str(example_env.root), "--vault-password-file", str(tmp_path / "nope")]
    )
    assert result.exit_code == 2
    assert "vault password file" in result.output and "does not exist" in result.output


def test_secrets_generate_adds_only_missing(example_env: EnvFixture) -> None:
    from stagectl.vault import decrypt, read_password_file

    inventory = example_env.root / INVENTORY
    inventory.write_text(
        inventory.read_text() + "    - name: shop\n      domain: shop.staging.mdubiel.org\n      repo: /srv/shop\n"
    )
    password = read_password_file(example_env.vault_password_file)
    before = decrypt(example_env.root / VAULT, password)
    args = ["secrets", "generate", "--env", str(example_env.root),
            "--vault-password-file", str(example_env.vault_password_file)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "vault_projects.shop" in result.output
    after = decrypt(example_env.root / VAULT, password)
    assert after["vault_projects"]["beryl3"] == before["vault_projects"]["beryl3"]
    assert set(after["vault_projects"]["shop"]) == {
        "postgres_password", "postgres_monitor_password", "redis_password", "django_secret_key"
    }
    for secret in after["vault_projects"]["shop"].values():
        assert secret not in result.output
    again = runner.invoke(app, args)
    assert "nothing changed" in again.output


def test_plan_with_a_relative_environment_path_renders_every_file(
    example_env: EnvFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stagectl.render import render_environment

    # ansible-runner changes directory: a relative path must still find the inventory.
    monkeypatch.chdir(example_env.root.parent)
    files = render_environment(Path(example_env.root.name), Path("out"), example_env.vault_password_file)
    kinds = {f.kind for f in files}
    assert {"compose", "prometheus_config", "nginx_main", "env"} <= kinds
    assert all(f.local.is_file() for f in files)


def test_plan_prints_warnings_and_still_passes() -> None:
    import io

    from rich.console import Console

    from stagectl.cli import plan as cli_plan
    from stagectl.plan import PlanReport
    from stagectl.validate import Check

    out = io.StringIO()
    note = "project 'beryl3': app.python is 3.11 but the app image is built on python:3.13-slim [x]"
    report = PlanReport(hosts=["staging-server"], files=[], checks=[Check("static", "f", "passed")],
                        notes=[note])
    cli_plan.print_plan(Console(file=out, width=300), report, None)
    text = out.getvalue()
    assert f"WARNING {note}" in text  # markup in the note is printed as it is
    assert report.ok and "plan OK" in text
