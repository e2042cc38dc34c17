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
  - Never touches a managed host.
options:
  files:
    description: The manifest, a list of dicts with C(src), C(dest), C(mode) and C(kind).
    type: list
    elements: dict
    required: true
  dest:
    description: Local directory the entries' absolute C(dest) paths are placed under.
    type: path
    required: true
  manifest:
    description: Local path of the JSON record to write.
    type: path
    required: true
  role:
    description: Name recorded in the manifest.
    type: str
    required: true
"""

import json
import os
from pathlib import Path
from typing import Any

from ansible._internal._templating import _template_vars  # the template action's own helper
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

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
        result = templar.template(template_data, escape_backslashes=False, overrides=OVERRIDES)
        return "" if result is None else str(result)

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        args = self._task.args
        try:
            files = list(args["files"])
            root = Path(str(args["dest"]))
            manifest = Path(str(args["manifest"]))
            role = str(args["role"])
        except KeyError as exc:
            raise AnsibleActionFail(f"render_files needs the argument {exc}") from None

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
        result.update(changed=True, rendered=len(record))
        return result
