"""The package's module-level imports form no cycle: a module can be read, and tested, after the
modules it imports. Imports inside functions and under TYPE_CHECKING do not count (they run late
or never)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import stagectl

PACKAGE = Path(stagectl.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(tree: ast.Module, package: str) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
            found.add(base)
    return {name for name in found if name == "stagectl" or name.startswith("stagectl.")}


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "ansible_collections" in path.parts:
            continue  # loaded by Ansible by file, not imported by the package
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        graph[name] = {dep for dep in top_level_imports(tree, package) if dep != name}
    return graph


def test_graph_covers_the_package() -> None:
    graph = import_graph()
    assert {"stagectl.cli", "stagectl.doctor.checks", "stagectl.probes", "stagectl.status"} <= set(graph)
    assert {"stagectl.probes", "stagectl.expectations"} <= graph["stagectl.status"]


def test_module_imports_are_acyclic() -> None:
    try:
        tuple(TopologicalSorter(import_graph()).static_order())
    except CycleError as error:
        raise AssertionError(f"import cycle: {' -> '.join(error.args[1])}") from None


def test_status_and_alerts_do_not_import_doctor() -> None:
    graph = import_graph()
    for reader in ("stagectl.status", "stagectl.alerts"):
        assert not {dep for dep in graph[reader] if dep.startswith("stagectl.doctor")}, reader


def test_the_test_bed_image_factory_stays_out_of_the_product() -> None:
    """The sandbox (rehearsal server, stand-in images) is reached only through `stagectl sandbox`:
    plan, deploy, doctor and status never load it, so a user with a registry runs the official
    images and nothing of the test bed."""
    graph = import_graph()
    product = {name for name in graph if not name.startswith(("stagectl.sandbox", "stagectl.cli"))}
    assert not {name: deps for name in product if (deps := {d for d in graph[name] if d.startswith("stagectl.sandbox")})}
    lazy = [path for path in PACKAGE.rglob("*.py")
            if "ansible_collections" not in path.parts and "sandbox" not in path.parts
            and path.name != "sandbox.py" and "stagectl.sandbox" in path.read_text()]
    assert lazy == [], "only stagectl/cli/sandbox.py may load the sandbox"


def test_the_models_image_defaults_are_the_official_images() -> None:
    import json

    from stagectl.model import Environment

    schema = json.dumps(Environment.model_json_schema())
    assert '"postgres:17.6"' in schema and '"nginx:1.28.0"' in schema  # the defaults are in it
    assert "standin" not in schema and "stagectl-sandbox" not in schema
