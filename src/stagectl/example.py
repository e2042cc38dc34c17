"""The example environment: server staging.mdubiel.org with projects beryl3 and project2.

`stagectl init` writes it; tests and benchmarks build variations of it.
"""

from __future__ import annotations

from typing import Any

EXAMPLE_SERVER_DOMAIN = "staging.mdubiel.org"
EXAMPLE_SERVER_ADDRESS = "192.168.1.14"  # written into files, never contacted


def example_inventory(projects: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """inventory/staging.yml of the example, as data."""
    if projects is None:
        projects = [
            {
                "name": "beryl3",
                "domain": f"beryl3.{EXAMPLE_SERVER_DOMAIN}",
                "repo": "https://example.invalid/beryl3.git",
                "ref": "main",
                "ports": {"postgres": 5432, "django": 8000, "redis": 6379},
                "worker": False,
            },
            {
                "name": "project2",
                "domain": f"project2.{EXAMPLE_SERVER_DOMAIN}",
                "repo": "https://example.invalid/project2.git",
                "ref": "main",
                "ports": {"postgres": 5433, "django": 8001, "redis": 6380},
                "worker": False,
            },
        ]
    return {
        "staging": {
            "hosts": {"staging-server": {"ansible_host": EXAMPLE_SERVER_ADDRESS}},
            "vars": {"server_domain": EXAMPLE_SERVER_DOMAIN, "projects": projects},
        }
    }


def generated_projects(count: int) -> list[dict[str, Any]]:
    """`count` projects with ports left out, for benchmarks and allocation tests."""
    return [
        {
            "name": f"app{i:02d}",
            "domain": f"app{i:02d}.{EXAMPLE_SERVER_DOMAIN}",
            "repo": f"https://example.invalid/app{i:02d}.git",
        }
        for i in range(1, count + 1)
    ]
