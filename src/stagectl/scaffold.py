"""`stagectl init`: the Ansible layout, with the example projects and a vault of fresh secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stagectl import collection
from stagectl.environment import ALL_VARS, ENVIRONMENT_FILES, INVENTORY, STAGING_VARS, VAULT
from stagectl.errors import EnvironmentExists, VaultError
from stagectl.example import example_inventory
from stagectl.model import GlobalSettings, StagingSettings
from stagectl.vault import new_password_file, new_vault, read_password_file, write_vault

HEADERS = {
    INVENTORY: (
        "# Server and project configuration.\n"
        "# Project ports left out are allocated from 5432+/8000+/6379+ by `stagectl plan` and written\n"
        "# back here, so adding or removing a project never moves another project's ports.\n"
    ),
    ALL_VARS: (
        "# Global settings: ports, retention, memory budgets and more; images are\n"
        "# pinned official releases. Remove a key to fall back to stagectl's default.\n"
    ),
    STAGING_VARS: "# Settings of this environment (staging).\n",
}


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


def ansible_cfg(vault_password_file: Path) -> str:
    """Lets a plain `ansible-playbook stagectl.staging.site` run from the environment directory."""
    return (
        "# Written by `stagectl init`. Lets plain ansible-playbook use this environment:\n"
        "#   ansible-playbook stagectl.staging.site\n"
        "[defaults]\n"
        "inventory = inventory/staging.yml\n"
        f"collections_path = {collection.collections_path()}\n"
        f"vars_plugins_enabled = {collection.VARS_PLUGINS_ENABLED}\n"
        f"vault_password_file = {vault_password_file}\n"
        "interpreter_python = auto_silent\n"
        "\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        f"ssh_args = {collection.SSH_ARGS}\n"
    )


def init_environment(root: Path, vault_password_file: Path) -> list[Path]:
    """Write a new environment; refuse if any of its files exists. Returns the files written."""
    existing = [rel for rel in ENVIRONMENT_FILES if (root / rel).exists()]
    if existing:
        raise EnvironmentExists(
            f"{root} already holds an environment ({', '.join(existing)})",
            hint="pick an empty directory; stagectl init never overwrites an environment",
        )
    if vault_password_file.resolve().is_relative_to(root.resolve()):
        raise VaultError(
            f"the vault password file {vault_password_file} is inside the environment directory",
            hint="keep it outside, so that committing the environment never commits the key",
        )
    if vault_password_file.exists():
        password = read_password_file(vault_password_file)
    else:
        new_password_file(vault_password_file)
        password = read_password_file(vault_password_file)

    inventory = example_inventory()
    names = [p["name"] for p in inventory["staging"]["vars"]["projects"]]
    files = {
        INVENTORY: HEADERS[INVENTORY] + _dump(inventory),
        ALL_VARS: HEADERS[ALL_VARS] + _dump(
            {
                "ansible_user": "ansible",
                "ansible_ssh_private_key_file": "~/.ssh/ansible_staging",
                "ansible_python_interpreter": "/usr/bin/python3",
                **GlobalSettings().model_dump(exclude_none=True),
            }
        ),
        STAGING_VARS: HEADERS[STAGING_VARS] + _dump(StagingSettings().model_dump(exclude_none=True)),
    }
    written: list[Path] = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    write_vault(root / VAULT, new_vault(names), password)
    written.append(root / VAULT)
    (root / "ansible.cfg").write_text(ansible_cfg(vault_password_file))
    written.append(root / "ansible.cfg")
    return written
