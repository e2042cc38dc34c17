"""Action plugin: render a role's whole file manifest on the controller, for `stagectl plan`."""

from __future__ import annotations

DOCUMENTATION = r"""
name: render_files
short_description: Render every template of a role's file manifest into a local directory
description:
  - Renders each entry of O(files) (the role's manifest, see docs/templates-contract.md) the way
    M(ansible.builtin.template) renders it (same template search path, the same variables plus
    the entry as C(item), same Jinja settings), and writes the result under O(dest) followed by
    the entry's C(dest), on the controller, with the entry's mode.
  - One task for a whole manifest instead of one module run per file, so that planning an
    environment of many projects stays fast. Deployment keeps using M(ansible.builtin.template);
    the test suite checks that both give the same bytes.
  - Also writes O(manifest), a JSON record of what was rendered, read by C(stagectl plan).
  - With O(projects), renders one project's manifest after another in this one task, each with
    C(project_name) set to the project (a role included once per project cost more than its
    rendering when an environment has many projects).
  - Never touches a managed host.
options:
  files:
    description:
      - The manifest, a list of dicts with C(src), C(dest), C(mode) and C(kind).
      - Required without O(projects).
    type: list
    elements: dict
  files_var:
    description:
      - With O(projects), the name of the variable that holds the manifest, evaluated again for
        each project.
    type: str
  projects:
    description:
      - Project names. Each project's manifest (O(files_var)) is rendered with C(project_name)
        set to the name, and recorded in O(manifest) with C({project}) replaced by the name.
    type: list
    elements: str
  dest:
    description: Local directory the entries' absolute C(dest) paths are placed under.
    type: path
    required: true
  manifest:
    description: Local path of the JSON record to write; with O(projects), C({project}) in it stands for the project's name.
    type: path
    required: true
  role:
    description: Name recorded in the manifest.
    type: str
    required: true
"""

import json
import os
import re
from pathlib import Path
from typing import Any

from ansible._internal._templating import _template_vars  # the template action's own helper
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

# An identifier, so that the variable's name is all that ever goes into the template below.
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# The template action's defaults (trim_blocks on, lstrip_blocks off, '\n'), spelled out.
OVERRIDES = {
    "block_start_string": "{%",
    "block_end_string": "%}",
    "variable_start_string": "{{",
    "variable_end_string": "}}",
    "comment_start_string": "{#",
    "comment_end_string": "#}",
    "trim_blocks": True,
    "lstrip_blocks": False,
    "newline_sequence": "\n",
}


# ansible-core is untyped: ActionBase is Any to mypy, which strict mode will not subclass.
class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False
    _requires_connection = False

    def _render_one(self, entry: dict[str, Any], task_vars: dict[str, Any]) -> str:
        # Mirrors ansible.builtin.template's rendering step so the bytes are the deploy's bytes.
        source = self._find_needle("templates", entry["src"])
        template_data = trust_as_template(self._loader.get_text_file_contents(source))
        searchpath = list(task_vars.get("ansible_search_path", []))
        searchpath.extend([self._loader._basedir, os.path.dirname(source)])
        searchpath = [p for base in searchpath for p in (os.path.join(base, "templates"), base)]
        temp_vars = task_vars.copy()
        temp_vars["item"] = entry
        temp_vars.update(
            _template_vars.generate_ansible_template_vars(
                path=entry["src"],
                fullpath=source,
                dest_path=entry["dest"],
                include_ansible_managed="ansible_managed" not in temp_vars,
            )
        )
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=temp_vars)
        self._compile_once(templar, template_data, tuple(searchpath))
        result = templar.template(template_data, escape_backslashes=False, overrides=OVERRIDES)
        return "" if result is None else str(result)

    def _compile_once(self, templar: Any, template_data: str, searchpath: tuple[str, ...]) -> None:
        """Let `templar` reuse what this task compiled of the same template before: rendering the
        same templates for project after project, compiling them again was a third of the time.
        A compiled template holds no variables; with the same source, options and search path
        (which its includes are looked up in) it is the same. Only the file's own template is
        kept, not the variables it templates on the way. Without the engine's hook (another
        ansible-core), every render compiles, as before."""
        engine: Any = getattr(templar, "_engine", None)
        compile_template = getattr(engine, "_compile_template", None)
        if compile_template is None:
            return
        compiled: dict[Any, Any] = self.__dict__.setdefault("_compiled_templates", {})

        def compile_or_reuse(template: Any, options: Any) -> Any:
            if template is not template_data:
                return compile_template(template, options)
            key = (str(template), options, searchpath)
            if key not in compiled:
                compiled[key] = compile_template(template, options)
            return compiled[key]

        engine._compile_template = compile_or_reuse

    def _render_manifest(self, files: list[Any], task_vars: dict[str, Any], root: Path, manifest: Path,
                         role: str) -> int:
        record = []
        for entry in files:
            entry = dict(entry)
            target = root / str(entry["dest"]).lstrip("/")
            try:
                text = self._render_one(entry, task_vars)
            except AnsibleError as exc:
                raise AnsibleActionFail(f"{entry['src']} (for {entry['dest']}): {exc.message}") from None
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
            target.chmod(int(str(entry["mode"]), 8))
            record.append({k: (str(v) if not isinstance(v, (bool, int)) else v) for k, v in entry.items()})

        manifest.parent.mkdir(parents=True, exist_ok=True)
        host = task_vars.get("inventory_hostname", "")
        manifest.write_text(json.dumps({"host": host, "role": role, "files": record}, indent=2) + "\n")
        return len(record)

    def _variable(self, name: str, project_vars: dict[str, Any]) -> Any:
        """The value of the variable `name` (checked against VARIABLE_NAME) with `project_vars`."""
        templar = self._templar.copy_with_new_env(available_variables=project_vars)
        try:
            return templar.template(trust_as_template("{{ " + name + " }}"))
        except AnsibleError as exc:
            raise AnsibleActionFail(f"{name}: {exc.message}") from None

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = self._task.args
        try:
            root = Path(str(args["dest"]))
            manifest = str(args["manifest"])
            role = str(args["role"])
        except KeyError as exc:
            raise AnsibleActionFail(f"render_files needs the argument {exc}") from None

        projects = args.get("projects")
        if projects is None:
            if "files" not in args:
                raise AnsibleActionFail("render_files needs the argument 'files' (or 'projects' and 'files_var')")
            rendered = self._render_manifest(list(args["files"]), task_vars, root, Path(manifest), role)
        else:
            files_var = str(args.get("files_var", ""))
            if not VARIABLE_NAME.fullmatch(files_var):
                raise AnsibleActionFail(f"render_files: files_var must name a variable, got {files_var!r}")
            rendered = 0
            for name in map(str, projects):
                project_vars = {**task_vars, "project_name": name}
                try:
                    rendered += self._render_manifest(list(self._variable(files_var, project_vars)), project_vars,
                                                      root, Path(manifest.replace("{project}", name)), role)
                except AnsibleActionFail as exc:
                    raise AnsibleActionFail(f"project {name}: {exc.message}") from None
        result.update(changed=True, rendered=rendered)
        return result
