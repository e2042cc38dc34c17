"""`plan` renders with the `render_files` action, `deploy` writes with `ansible.builtin.template`:
the two must give the same bytes, or what plan validated is not what lands on the server.

The example environment is rendered from one snapshot of the collection twice: once with the
roles' own tasks/render.yml (one `render_files` task per manifest), once with each of those task
files turned into an `ansible.builtin.template` loop over the very same manifest, run inside the
same role (so role variables such as `project_spec`, `backups_project` and the dashboards'
`item.dashboard` resolve as in a deploy). Every file is then compared byte for byte, with its mode.
"""

from __future__ import annotations

import difflib
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from stagectl import collection
from stagectl.render import PROJECTS_PER_PROCESS, render_environment, render_processes
from tests.render.conftest import (
    CONTRACT_KINDS,
    RENDER_TASK_FILES,
    BothWays,
    RenderedEnv,
    render_files_task,
)

ROLES = collection.collection_root() / "roles"
RENDER_PLAYBOOK = collection.collection_root() / "playbooks" / "render.yml"


def _diff(plan: Path, deploy: Path, rel: Path) -> str:
    try:
        a, b = plan.read_text().splitlines(), deploy.read_text().splitlines()
    except UnicodeDecodeError:
        return f"{rel}: binary files differ"
    return "\n".join(difflib.unified_diff(a, b, f"render_files/{rel}", f"template/{rel}", lineterm="", n=1))


def test_render_files_gives_the_template_modules_bytes(deploy_equivalent: BothWays) -> None:
    plan: RenderedEnv = deploy_equivalent.by_render_files
    deploy_root = deploy_equivalent.by_template
    # Every role whose render tasks use render_files took part, each through the template module.
    assert {"shared_monitoring/tasks/render.yml", "project/tasks/render.yml", "backups/tasks/render.yml",
            "backups/tasks/render_common.yml", "container_health/tasks/render.yml"} <= set(deploy_equivalent.rewritten)

    plan_files = {p.relative_to(plan.root) for p in plan.tree()}
    deploy_files = {p.relative_to(deploy_root) for p in deploy_root.rglob("*") if p.is_file()}
    assert plan_files == deploy_files, (
        f"only by render_files: {sorted(map(str, plan_files - deploy_files))}; "
        f"only by template: {sorted(map(str, deploy_files - plan_files))}"
    )
    # Every manifest entry of every role, for every project, is among them.
    entries = plan.manifest()
    assert {Path(e["dest"].lstrip("/")) for e in entries} <= plan_files
    assert {(e["role"], e["project"]) for e in entries} >= {
        ("shared_monitoring", None), ("backups", None),
        ("project", "beryl3"), ("project", "project2"), ("backups", "beryl3"), ("backups", "project2"),
    }

    different = []
    for rel in sorted(plan_files):
        ours, theirs = plan.root / rel, deploy_root / rel
        if ours.read_bytes() != theirs.read_bytes():
            different.append(_diff(ours, theirs, rel))
        ours_mode, theirs_mode = stat.S_IMODE(ours.stat().st_mode), stat.S_IMODE(theirs.stat().st_mode)
        if ours_mode != theirs_mode:
            different.append(f"{rel}: mode {ours_mode:04o} by render_files, {theirs_mode:04o} by template")
    assert not different, f"{len(different)} of {len(plan_files)} files differ:\n" + "\n".join(different[:10])


def test_every_role_renders_its_whole_manifest_with_render_files() -> None:
    """The contract of tasks/render*.yml: one task, `stagectl.staging.render_files`, given the
    role's whole manifest, writing under <render dir>/<host> and recording it in .manifest/;
    and playbooks/render.yml runs every such task file of every role that has a manifest."""
    play = yaml.safe_load(RENDER_PLAYBOOK.read_text())[0]
    included = {
        (t["ansible.builtin.include_role"]["name"].removeprefix("stagectl.staging."),
         t["ansible.builtin.include_role"].get("tasks_from", "main"))
        for t in play["tasks"] if "ansible.builtin.include_role" in t
    }
    problems: list[str] = []
    planned: set[str] = set()
    for role_dir in sorted(p for p in ROLES.iterdir() if (p / "vars" / "main.yml").is_file()):
        role = role_dir.name
        variables = yaml.safe_load((role_dir / "vars" / "main.yml").read_text()) or {}
        if f"{role}_files" not in variables:
            continue  # writes no whole file
        passed: set[str] = set()
        for task_file in sorted((role_dir / "tasks").glob("render*.yml")):
            where = f"roles/{role}/tasks/{task_file.name}"
            if task_file.name not in RENDER_TASK_FILES:
                problems.append(f"{where}: a render task file the render playbook does not know")
                continue
            if (role, task_file.stem) not in included:
                problems.append(f"{where}: not included by playbooks/render.yml, so plan never renders it")
            call = render_files_task(yaml.safe_load(task_file.read_text()))
            if call is None:
                problems.append(f"{where}: is not one stagectl.staging.render_files task")
                continue
            args: dict[str, Any] = call["stagectl.staging.render_files"]
            per_project = "projects" in args
            match = (re.fullmatch(r"(\w+)", str(args.get("files_var", ""))) if per_project
                     else re.fullmatch(r"\{\{ (\w+) \}\}", str(args.get("files", ""))))
            if not match or match.group(1) not in variables or not match.group(1).startswith(f"{role}_"):
                problems.append(f"{where}: the manifest given is {args.get('files_var' if per_project else 'files')!r}, "
                                "not a manifest of vars/main.yml")
            else:
                passed.add(match.group(1))
            if per_project and args["projects"] != "{{ stagectl_render_projects }}":
                problems.append(f"{where}: projects is {args['projects']!r}, not the render's projects")
            if args.get("dest") != "{{ stagectl_render_dir }}/{{ inventory_hostname }}":
                problems.append(f"{where}: dest is {args.get('dest')!r}")
            manifest = str(args.get("manifest", ""))
            if not (manifest.startswith(f"{{{{ stagectl_render_dir }}}}/.manifest/{{{{ inventory_hostname }}}}-{role}")
                    and manifest.endswith("-{project}.json" if per_project else ".json")):
                problems.append(f"{where}: manifest is {manifest!r}")
            if args.get("role") != role:
                problems.append(f"{where}: role is {args.get('role')!r}")
            if call.get("delegate_to") != "localhost":
                problems.append(f"{where}: not delegated to localhost")
        if f"{role}_files" not in passed:
            problems.append(f"roles/{role}: {role}_files is never given to render_files")
        planned.add(role)
    assert {"shared_monitoring", "project", "backups"} <= planned
    assert not problems, "\n".join(problems)


def test_plan_records_every_file_it_renders(example: RenderedEnv) -> None:
    """What plan validates is what .manifest/ lists: a file rendered without a record would reach
    the server unchecked."""
    entries = example.manifest()
    recorded = [example.path(e["dest"]) for e in entries]
    assert len(recorded) == len(set(recorded)), "two entries render the same file"
    unrecorded = sorted(str(p.relative_to(example.root)) for p in set(example.tree()) - set(recorded))
    assert not unrecorded, f"rendered without a manifest record: {unrecorded}"
    for entry in entries:
        path = example.path(entry["dest"])
        assert path.is_file(), f"{entry['dest']} is recorded but was not rendered"
        assert entry["kind"] in CONTRACT_KINDS, entry
        assert stat.S_IMODE(path.stat().st_mode) == int(entry["mode"], 8), entry
    assert [(f.dest, f.kind, f.mode, f.role) for f in example.rendered()] == [
        (e["dest"], e["kind"], e["mode"], e["role"]) for e in entries
    ]


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(root)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_render_in_several_processes_gives_the_same_files(example: RenderedEnv, tmp_path: Path) -> None:
    """Large environments are rendered by several ansible-playbook processes, each a share of the
    projects: the files, their modes and plan's records are those of one process."""
    out = tmp_path / "sliced"
    files = render_environment(example.env.root, out, example.env.vault_password_file, processes=2)
    assert {f.dest for f in files} == {e["dest"] for e in example.entries}
    assert sorted(p.name for p in (out / ".manifest").iterdir()) == sorted(
        p.name for p in (example.out / ".manifest").iterdir()
    )
    single, sliced = _tree(example.root), _tree(out / example.host)
    assert sliced.keys() == single.keys()
    different = [rel for rel in single if single[rel] != sliced[rel]]
    assert different == [], different


def test_render_processes_follow_the_projects() -> None:
    assert render_processes(2, cpus=8) == 1
    assert render_processes(PROJECTS_PER_PROCESS * 2, cpus=8) == 2
    assert render_processes(300, cpus=2) == 2
    assert render_processes(0, cpus=2) == 1
