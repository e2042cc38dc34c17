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
  projects:
    description:
      - Project names. Instead of O(files), O(directories), O(copies) and O(compose_file), each
        project's are the variables O(files_var), O(directories_var), O(copies_var) and
        O(compose_file_var), evaluated with C(project_name) set to the project, and all projects
        are read with the same one M(ansible.builtin.find) run, so a deploy of many projects learns
        which of them differ in one round trip.
    type: list
    elements: str
  files_var:
    description: With O(projects), the name of the variable that holds a project's manifest.
    type: str
  directories_var:
    description: With O(projects), the name of the variable that holds a project's directories.
    type: str
  copies_var:
    description: With O(projects), the name of the variable that holds a project's copies.
    type: str
  compose_file_var:
    description: With O(projects), the name of the variable that holds a project's O(compose_file).
    type: str
  details_var:
    description:
      - With O(projects), the name of a variable evaluated for each project none of whose files,
        directories and copies differs, and returned as that project's C(details), what the caller
        needs next of the projects that may be settled, computed for those only.
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
projects:
  description:
    - With O(projects), one dict per project in their order, with C(name), C(differs) (whether
      any file, directory or copy differs), C(changed_dests), C(changed_directories),
      C(changed_copies), C(compose_services) and, for a project that does not differ and with
      O(details_var), C(details).
  type: list
  elements: dict
"""

import hashlib
import os
from typing import Any

import yaml
from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible_collections.stagectl.staging.plugins.action.render_files import (  # type: ignore[import-untyped]
    VARIABLE_NAME,
)
from ansible_collections.stagectl.staging.plugins.action.render_files import (
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
        args = self._task.args
        # The same rendering step as `stagectl plan`, with this task's loader and templar.
        renderer = RenderFiles(self._task, self._connection, self._play_context, self._loader,
                               self._templar, self._shared_loader_obj)
        projects = args.get("projects")
        if projects is None:
            if "files" not in args:
                raise AnsibleActionFail("file_changes needs the argument 'files' (or 'projects' and 'files_var')")
            manifest = _Manifest.of(renderer, task_vars, args.get("files"), args.get("directories"),
                                    args.get("copies"), args.get("compose_file"))
            found = self._read_host([manifest], task_vars)
            result.update(changed=False, **manifest.changes(found))
            if not args.get("compose_file"):
                result.pop("compose_services")
            return result

        names = [str(name) for name in projects]
        variables = {key: str(args.get(key) or "") for key in
                     ("files_var", "directories_var", "copies_var", "compose_file_var", "details_var")}
        for key, name in variables.items():
            if (name or key == "files_var") and not VARIABLE_NAME.fullmatch(name):
                raise AnsibleActionFail(f"file_changes: {key} must name a variable, got {name!r}")
        manifests = []
        for name in names:
            project_vars = {**task_vars, "project_name": name}
            try:
                evaluated = {key: renderer._variable(var, project_vars) if var else None
                             for key, var in variables.items() if key != "details_var"}
                manifests.append(_Manifest.of(renderer, project_vars, evaluated["files_var"],
                                              evaluated["directories_var"], evaluated["copies_var"],
                                              evaluated["compose_file_var"]))
            except AnsibleActionFail as exc:
                raise AnsibleActionFail(f"project {name}: {exc.message}") from None
        found = self._read_host(manifests, task_vars)
        entries = []
        for name, manifest in zip(names, manifests, strict=True):
            changes = manifest.changes(found)
            entry = {"name": name, "differs": any(changes[key] for key in _CHANGE_KEYS), **changes}
            if variables["details_var"] and not entry["differs"]:
                try:
                    entry["details"] = renderer._variable(variables["details_var"], {**task_vars, "project_name": name})
                except AnsibleActionFail as exc:
                    raise AnsibleActionFail(f"project {name}: {exc.message}") from None
            entries.append(entry)
        result.update(changed=False, projects=entries)
        return result

    def _read_host(self, manifests: list[_Manifest], task_vars: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The checksum, mode and owner of every path of `manifests`, in one module run."""
        paths = [path for manifest in manifests for path in manifest.paths()]
        if not paths:
            return {}
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
        return {str(f["path"]): f for f in listing.get("files", [])}


_CHANGE_KEYS = ("changed_dests", "changed_directories", "changed_copies")


class _Manifest:
    """One manifest's entries with what they must be on the host (rendered on the controller)."""

    def __init__(self, files: list[dict[str, Any]], checksums: list[str], directories: list[dict[str, Any]],
                 copies: list[dict[str, Any]], copy_checksums: list[str], compose_services: list[str]) -> None:
        self.files, self.checksums = files, checksums
        self.directories = directories
        self.copies, self.copy_checksums = copies, copy_checksums
        self.compose_services = compose_services

    @classmethod
    def of(cls, renderer: Any, task_vars: dict[str, Any], files: Any, directories: Any, copies: Any,
           compose_file: Any) -> _Manifest:
        files = [dict(entry) for entry in files or []]
        checksums, compose_services = [], []
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
        copies = [dict(entry) for entry in copies or []]
        copy_checksums = []
        for entry in copies:
            try:
                source = renderer._find_needle("files", str(entry["src"]))
                with open(source, "rb") as handle:
                    copy_checksums.append(hashlib.sha1(handle.read()).hexdigest())
            except (AnsibleError, OSError) as exc:
                raise AnsibleActionFail(f"cannot read {entry['src']} (for {entry['dest']}): {exc}") from None
        return cls(files, checksums, [dict(entry) for entry in directories or []], copies, copy_checksums,
                   compose_services)

    def paths(self) -> list[str]:
        return ([str(entry["dest"]) for entry in self.files + self.copies]
                + [str(entry["path"]).rstrip("/") for entry in self.directories])

    def changes(self, found: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
        return {
            "changed_dests": [str(entry["dest"]) for entry, checksum in zip(self.files, self.checksums, strict=True)
                              if not _file_matches(entry, found.get(str(entry["dest"])), checksum)],
            "changed_directories": [str(entry["path"]) for entry in self.directories
                                    if not _directory_matches(entry, found.get(str(entry["path"]).rstrip("/")))],
            "changed_copies": [str(entry["dest"]) for entry, checksum in zip(self.copies, self.copy_checksums,
                                                                             strict=True)
                               if not _file_matches(entry, found.get(str(entry["dest"])), checksum)],
            "compose_services": self.compose_services,
        }
