"""Every role's public variables: defaults/main.yml and meta/argument_specs.yml say the same.

The defaults file holds the values, the argument specs the documentation and types
(`ansible-doc -t role` reads them). They drift apart silently: a variable added to one and not
the other, or a default changed in one place only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

import stagectl

ROLES_DIR = (
    Path(stagectl.__file__).parent / "ansible_collections" / "stagectl" / "staging" / "roles"
)
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())


def _defaults(role: str) -> dict[str, Any]:
    data = yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text())
    assert data is None or isinstance(data, dict), f"{role}/defaults/main.yml is not a mapping"
    return data or {}


def _options(role: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Option name -> entry point -> its spec."""
    specs = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    options: dict[str, dict[str, dict[str, Any]]] = {}
    for entry_point, spec in specs["argument_specs"].items():
        for name, option in (spec.get("options") or {}).items():
            options.setdefault(name, {})[entry_point] = option
    return options


def test_the_collection_has_roles() -> None:
    assert {"backups", "common", "project", "shared_monitoring"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_has_both_files(role: str) -> None:
    assert (ROLES_DIR / role / "defaults" / "main.yml").is_file()
    assert (ROLES_DIR / role / "meta" / "argument_specs.yml").is_file()


@pytest.mark.parametrize("role", ROLES)
def test_every_default_has_a_spec(role: str) -> None:
    options = _options(role)
    missing = [name for name in _defaults(role) if name not in options]
    assert not missing, f"{role}: {missing} in defaults/main.yml, in no entry point of argument_specs.yml"


@pytest.mark.parametrize("role", ROLES)
def test_every_optional_option_is_a_default(role: str) -> None:
    """An option the caller may leave out takes its value from defaults/main.yml; one it must
    give (required) has none there."""
    defaults = _defaults(role)
    wrong = []
    for name, by_entry_point in _options(role).items():
        for entry_point, option in by_entry_point.items():
            required = bool(option.get("required", False))
            if required == (name in defaults):
                wrong.append(f"{entry_point}.{name} (required: {required})")
    assert not wrong, f"{role}: argument_specs.yml and defaults/main.yml disagree on {wrong}"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_defaults_file(role: str) -> None:
    defaults = _defaults(role)
    wrong = []
    for name, by_entry_point in _options(role).items():
        for entry_point, option in by_entry_point.items():
            if "default" in option and option["default"] != defaults.get(name):
                wrong.append(
                    f"{entry_point}.{name}: spec {option['default']!r}, "
                    f"defaults/main.yml {defaults.get(name)!r}"
                )
    assert not wrong, f"{role}: {wrong}"


@pytest.mark.parametrize("role", ROLES)
def test_spec_types_accept_the_defaults(role: str) -> None:
    """What Ansible checks when the role starts, for every value that is not a template."""
    defaults = _defaults(role)
    errors = []
    for entry_point in {ep for by_ep in _options(role).values() for ep in by_ep}:
        spec = {
            name: by_ep[entry_point]
            for name, by_ep in _options(role).items()
            if entry_point in by_ep and name in defaults and "{{" not in str(defaults[name])
        }
        result = ArgumentSpecValidator(spec).validate({name: defaults[name] for name in spec})
        errors += [f"{entry_point}: {message}" for message in result.error_messages]
    assert not errors, f"{role}: {errors}"
