"""`secrets generate`: the vault's missing secrets, generated."""

from __future__ import annotations

from pathlib import Path

import typer

from stagectl import environment, vault
from stagectl import plan as plan_mod
from stagectl.cli.common import EnvDir, VaultFile, console, vault_file

app = typer.Typer(help="Secrets in the ansible-vault file.", no_args_is_help=True)


@app.command("generate")
def generate(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Add secrets missing from the vault (new projects, new keys); existing secrets are kept."""
    names = plan_mod.project_names(env)
    app_secrets = plan_mod.project_app_secrets(env)
    password = vault.read_password_file(vault_file(env, vault_password_file))
    data = vault.decrypt(env / environment.VAULT, password)
    added = vault.fill_missing(data, names, app_secrets)
    if added:
        vault.write_vault(env / environment.VAULT, data, password)
        console().print("added to the vault: " + ", ".join(added), markup=False)
    else:
        console().print("the vault already holds every secret; nothing changed")
