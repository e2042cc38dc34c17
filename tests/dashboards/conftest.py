"""Environments for the dashboard tests: the example, and one with the awkward cases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stagectl.derived import derive, project_view
from stagectl.environment import LoadedEnvironment, load_environment
from stagectl.model import Project
from stagectl.scaffold import init_environment

# The longest name the model accepts (40): its UIDs need the hashed form.
LONG_NAME = "a-very-long-project-name-for-uid-hashing"


@pytest.fixture(scope="session")
def loaded_example(tmp_path_factory: pytest.TempPathFactory) -> LoadedEnvironment:
    base = tmp_path_factory.mktemp("dashboards-env")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(base / "home"))
        patch.setenv("XDG_CONFIG_HOME", str(base / "home" / ".config"))
        root, key = base / "env", base / "keys" / "vault-pass"
        init_environment(root, key)
        return load_environment(root, vault_password_file=key)


@pytest.fixture(scope="session")
def example_vars(loaded_example: LoadedEnvironment) -> dict[str, Any]:
    """The `stagectl` variable of `stagectl init`'s example (beryl3 and project2)."""
    return derive(loaded_example.env).model_dump()


@pytest.fixture(scope="session")
def rich_vars(loaded_example: LoadedEnvironment, example_vars: dict[str, Any]) -> dict[str, Any]:
    """The example plus a 40-character project with a worker and a scheduler."""
    assert len(LONG_NAME) == 40
    project = Project(
        name=LONG_NAME,
        domain=f"{LONG_NAME}.staging.mdubiel.org",
        repo="https://example.invalid/long.git",
        worker=True,
        scheduler=True,
    )
    data = copy.deepcopy(example_vars)
    data["projects"].append(project_view(loaded_example.env, project).model_dump())
    data["project_names"].append(LONG_NAME)
    return data


@pytest.fixture(scope="session", params=["example", "rich"])
def any_vars(
    request: pytest.FixtureRequest, example_vars: dict[str, Any], rich_vars: dict[str, Any]
) -> dict[str, Any]:
    return example_vars if request.param == "example" else rich_vars
