"""Lookup: a digest of a directory tree on the controller that changes with its content only."""

from __future__ import annotations

DOCUMENTATION = r"""
name: source_digest
short_description: SHA-256 of a source tree's content, blind to file times
description:
  - For each directory in O(_terms), walks the tree on the controller and returns a SHA-256 over
    every entry's relative path, type, permission bits and content (a symbolic link's target),
    in path order.
  - File times, owners and the order the file system lists entries in do not count, so a tree
    that was only touched, copied or checked out again has the same digest; any changed byte,
    added, removed or renamed file, or changed executable bit gives another.
  - Entries whose path relative to the tree matches one of O(excludes) are left out, with what
    is below them, as C(community.general.archive) leaves them out of the shipped archive.
options:
  _terms:
    description: Directories on the controller.
    type: list
    elements: path
    required: true
  excludes:
    description: Glob patterns (fnmatch) matched against each entry's path relative to the tree.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Work out the source part of the build key
  ansible.builtin.set_fact:
    source_id: "{{ lookup('stagectl.staging.source_digest', '/src/app', excludes=['.git', '*/.git']) }}"
"""

RETURN = r"""
_raw:
  description: One lowercase hexadecimal SHA-256 per directory.
  type: list
  elements: str
"""

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

_CHUNK = 1 << 20


def _excluded(relative: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch(relative, pattern) for pattern in patterns)


def _entries(root: Path, patterns: Sequence[str]) -> Iterable[tuple[str, os.stat_result]]:
    """(relative POSIX path, lstat) of every entry below root that is not excluded, sorted."""
    pending = [""]
    while pending:
        prefix = pending.pop()
        directory = root / prefix if prefix else root
        with os.scandir(directory) as listing:
            names = sorted(entry.name for entry in listing)
        for name in names:
            relative = f"{prefix}/{name}" if prefix else name
            if _excluded(relative, patterns):
                continue
            info = os.lstat(root / relative)
            yield relative, info
            if stat.S_ISDIR(info.st_mode):
                pending.append(relative)


def source_digest(root: Path, patterns: Sequence[str]) -> str:
    if not root.is_dir():
        raise AnsibleLookupError(f"source_digest: {root} is not a directory on the controller")
    digest = hashlib.sha256()
    for relative, info in sorted(_entries(root, patterns)):
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            record = f"l {relative} {os.readlink(root / relative)}"
        elif stat.S_ISDIR(info.st_mode):
            record = f"d {relative} {mode:o}"
        elif stat.S_ISREG(info.st_mode):
            content = hashlib.sha256()
            with open(root / relative, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    content.update(chunk)
            record = f"f {relative} {mode:o} {content.hexdigest()}"
        else:
            # Sockets and FIFOs carry no content an image could use; their presence still counts.
            record = f"o {relative}"
        digest.update(record.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


class LookupModule(LookupBase):  # type: ignore[misc]
    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:
        self.set_options(var_options=variables, direct=kwargs)
        patterns = [str(p) for p in self.get_option("excludes")]
        return [source_digest(Path(str(term)), patterns) for term in terms]
