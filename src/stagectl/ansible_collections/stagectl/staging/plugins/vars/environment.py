"""Vars plugin: loads and validates a stagectl environment for plain ansible-playbook runs."""

from __future__ import annotations

DOCUMENTATION = r"""
name: environment
short_description: Validate a stagectl environment and provide its derived C(stagectl) variable
description:
  - For an inventory at C(<env>/inventory/staging.yml) (the layout C(stagectl init) writes), loads
    C(<env>/group_vars/all.yml), C(staging.yml) and the ansible-vault C(vault.yml), validates them
    with the same model the C(stagectl) CLI uses, and fails the run with every problem found.
  - Gives group C(all) the settings of C(all.yml), the vault variables and the derived
    C(stagectl) variable (ports, names, networks, paths, per-project views); gives group
    C(staging) the settings of C(staging.yml).
  - Needs the C(stagectl) Python package importable by Ansible (it ships this collection).
options:
  stage:
    ini:
      - key: stage
        section: vars_stagectl_environment
    env:
      - name: ANSIBLE_VARS_PLUGIN_STAGE
extends_documentation_fragment:
  - vars_plugin_staging
"""

import os
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleError
from ansible.inventory.group import Group
from ansible.plugins.vars import BaseVarsPlugin

try:
    import yaml

    from stagectl.derived import derive
    from stagectl.environment import (
        ALL_VARS,
        ALLOCATE_PORTS_ENV,
        INVENTORY,
        STAGING_VARS,
        VAULT,
        load_environment,
    )
    from stagectl.errors import EnvironmentInvalid

    IMPORT_ERROR: Exception | None = None
except ImportError as exc:  # pragma: no cover - only without the stagectl package
    IMPORT_ERROR = exc

# Ansible calls get_vars once per entity and source; the environment is read once per change.
_CACHE: dict[str, tuple[tuple[float, ...], dict[str, dict[str, Any]]]] = {}


def _environment_root(path: str) -> Path | None:
    candidate = Path(path)
    if candidate.is_file():
        candidate = candidate.parent
    if candidate.name == "inventory" and (candidate / "staging.yml").is_file():
        return candidate.parent
    return None


def _plain(data: Any) -> Any:
    """Ansible 2.19 tags loaded values; the model and the derived tree want plain Python values."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    if isinstance(data, bool) or data is None:
        return data
    for kind in (int, float, str):
        if isinstance(data, kind):
            return kind(data)
    return data


# ansible-core is untyped: BaseVarsPlugin is Any to mypy, which strict mode will not subclass.
class VarsModule(BaseVarsPlugin):  # type: ignore[misc]
    def _load(self, loader: Any, root: Path) -> dict[str, dict[str, Any]]:
        files = [root / rel for rel in (INVENTORY, ALL_VARS, STAGING_VARS, VAULT)]
        stamp = tuple(os.stat(f).st_mtime if f.exists() else 0.0 for f in files)
        cached = _CACHE.get(str(root))
        if cached and cached[0] == stamp:
            return cached[1]

        vault_path = root / VAULT
        vault_data = None
        if vault_path.exists():
            try:
                vault_data = _plain(loader.load_from_file(str(vault_path), cache="none"))
            except AnsibleError as exc:
                raise AnsibleError(
                    f"{VAULT}: cannot be read ({exc.message}); run with the vault password file "
                    "that `stagectl init` wrote (--vault-password-file or ansible.cfg)"
                ) from None
        try:
            allocate = os.environ.get(ALLOCATE_PORTS_ENV) == "1"
            loaded = load_environment(root, vault_data=vault_data or {}, allocate=allocate)
        except EnvironmentInvalid as exc:
            raise AnsibleError(f"stagectl environment {root}: {exc}") from None

        def read(rel: str) -> dict[str, Any]:
            return yaml.safe_load((root / rel).read_text()) or {}

        result = {
            "all": {**read(ALL_VARS), **(vault_data or {}), "stagectl": derive(loaded.env).model_dump()},
            "staging": read(STAGING_VARS),
        }
        _CACHE[str(root)] = (stamp, result)
        return result

    def get_vars(self, loader: Any, path: str, entities: Any, cache: bool = True) -> dict[str, Any]:
        super().get_vars(loader, path, entities)
        root = _environment_root(path)
        if root is None:
            return {}
        if IMPORT_ERROR is not None:
            raise AnsibleError(
                f"the stagectl Python package is not importable by Ansible ({IMPORT_ERROR}); "
                "install stagectl in the same Python environment as ansible-core"
            )
        if not isinstance(entities, list):
            entities = [entities]
        by_group = self._load(loader, root)
        data: dict[str, Any] = {}
        for entity in entities:
            if isinstance(entity, Group) and entity.name in by_group:
                data.update(by_group[entity.name])
        return data
