"""Action plugin: which files of a role's manifest differ on the host, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
name: file_changes
short_description: List the entries of a file manifest whose file on the host differs from the rendering
description:
  - Renders every entry of O(files) on the controller exactly as C(stagectl.staging.render_files)
    does (the bytes M(ansible.builtin.template) writes), then reads the checksum, mode and owner
    of every destination on the managed host with ONE M(ansible.builtin.find) run, and returns
    the destinations whose file is missing or differs in content, mode, owner or group.
  - A deploy then writes only those entries with M(ansible.builtin.template); an unchanged stack
    costs one module run instead of one per file, and a file edited by hand on the host is still
    found (its checksum differs) and written again.
  - Read-only on the host, so it also runs in check mode; never returns a file's content.
options:
  files:
    description: The manifest, a list of dicts with C(src), C(dest), C(mode) and optional C(owner), C(group).
    type: list
    elements: dict
    required: true
  directories:
    description:
      - Directories the role creates, dicts with C(path), C(mode) and optional C(owner), C(group)
        (an owner or group left out is not compared, as M(ansible.builtin.file) leaves it alone).
        Read by the same M(ansible.builtin.find) run.
    type: list
    elements: dict
    default: []
  copies:
    description:
      - Files copied from the controller as they are (M(ansible.builtin.copy)), dicts with C(src)
        (a path on the controller), C(dest), C(mode) and optional C(owner), C(group). Compared by
        the same M(ansible.builtin.find) run; their content never leaves the controller here.
    type: list
    elements: dict
    default: []
  compose_file:
    description:
      - The C(dest) of the manifest entry that is the stack's Compose file. When given, the
        result also names the services C(docker compose up) starts (those without C(profiles)),
        read from the rendering, so that a deploy can tell whether every one of them runs.
    type: str
"""

RETURN = r"""
changed_dests:
  description: The C(dest) of every entry that a write would change, in manifest order.
  type: list
  elements: str
changed_directories:
  description: The C(path) of every entry of O(directories) that is missing or differs in mode or owner.
  type: list
  elements: str
changed_copies:
  description: The C(dest) of every entry of O(copies) whose file differs or is missing.
  type: list
  elements: str
compose_services:
  description: With O(compose_file), the sorted names of the services that C(up) starts.
  type: list
  elements: str
"""

import hashlib
import os
from typing import Any

import yaml
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.stagectl.staging.plugins.action.render_files import (  # type: ignore[import-untyped]
    ActionModule as RenderFiles,
)


def _same_attributes(entry: dict[str, Any], found: dict[str, Any], default_owner: str | None) -> bool:
    if int(str(found.get("mode", "0")), 8) & 0o7777 != int(str(entry["mode"]), 8):
        return False
    # The manifests give numeric ids or names; a missing one is the task's default (root for
    # ansible.builtin.template in the roles; left alone for a directory without one).
    for key, uid_key, name_key in (("owner", "uid", "pw_name"), ("group", "gid", "gr_name")):
        wanted = entry.get(key, default_owner)
        if wanted is None:
            continue
        have = found.get(uid_key) if str(wanted).isdigit() else found.get(name_key)
        if str(wanted) != str(have):
            return False
    return True


def _file_matches(entry: dict[str, Any], found: dict[str, Any] | None, checksum: str) -> bool:
    return (found is not None and bool(found.get("isreg")) and found.get("checksum") == checksum
            and _same_attributes(entry, found, "root"))


def _directory_matches(entry: dict[str, Any], found: dict[str, Any] | None) -> bool:
    return found is not None and bool(found.get("isdir")) and _same_attributes(entry, found, None)


# ansible-core is untyped: ActionBase is Any to mypy, which strict mode will not subclass.
class ActionModule(ActionBase):  # type: ignore[misc]
    TRANSFERS_FILES = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result: dict[str, Any] = super().run(tmp, task_vars)
        try:
            files = [dict(entry) for entry in self._task.args["files"]]
        except KeyError:
            raise AnsibleActionFail("file_changes needs the argument 'files'") from None
        directories = [dict(entry) for entry in self._task.args.get("directories") or []]
        copies = [dict(entry) for entry in self._task.args.get("copies") or []]

        # The same rendering step as `stagectl plan`, with this task's loader and templar.
        renderer = RenderFiles(self._task, self._connection, self._play_context, self._loader,
                               self._templar, self._shared_loader_obj)
        compose_file = self._task.args.get("compose_file")
        compose_services: list[str] = []
        checksums = []
        for entry in files:
            try:
                text = renderer._render_one(entry, task_vars)
            except AnsibleError as exc:
                raise AnsibleActionFail(f"{entry['src']} (for {entry['dest']}): {exc.message}") from None
            checksums.append(hashlib.sha1(text.encode("utf-8")).hexdigest())
            if compose_file and str(entry["dest"]) == str(compose_file):
                services = (yaml.safe_load(text) or {}).get("services") or {}
                compose_services = sorted(name for name, spec in services.items()
                                          if not (spec or {}).get("profiles"))

        found: dict[str, dict[str, Any]] = {}
        copy_checksums = []
        for entry in copies:
            try:
                source = self._find_needle("files", str(entry["src"]))
                with open(source, "rb") as handle:
                    copy_checksums.append(hashlib.sha1(handle.read()).hexdigest())
            except (AnsibleError, OSError) as exc:
                raise AnsibleActionFail(f"cannot read {entry['src']} (for {entry['dest']}): {exc}") from None

        paths = ([str(entry["dest"]) for entry in files + copies]
                 + [str(entry["path"]).rstrip("/") for entry in directories])
        if paths:
            listing = self._execute_module(
                module_name="ansible.builtin.find",
                module_args={
                    "paths": sorted({os.path.dirname(p) or "/" for p in paths}),
                    "patterns": sorted({os.path.basename(p) for p in paths}),
                    "file_type": "any",
                    "hidden": True,
                    "get_checksum": True,
                    "checksum_algorithm": "sha1",
                },
                task_vars=task_vars,
            )
            if listing.get("failed"):
                raise AnsibleActionFail(f"could not read the files on the host: {listing.get('msg', '')}")
            found = {str(f["path"]): f for f in listing.get("files", [])}

        changed = [str(entry["dest"]) for entry, checksum in zip(files, checksums, strict=True)
                   if not _file_matches(entry, found.get(str(entry["dest"])), checksum)]
        changed_directories = [str(entry["path"]) for entry in directories
                               if not _directory_matches(entry, found.get(str(entry["path"]).rstrip("/")))]
        changed_copies = [str(entry["dest"]) for entry, checksum in zip(copies, copy_checksums, strict=True)
                          if not _file_matches(entry, found.get(str(entry["dest"])), checksum)]
        result.update(changed=False, changed_dests=changed, changed_directories=changed_directories,
                      changed_copies=changed_copies)
        if compose_file:
            result["compose_services"] = compose_services
        return result
