"""The `source_digest` lookup is the source part of an app image's build key: it must change with
the tree's content and only with it (a touched or re-copied tree builds nothing; any changed byte,
name, executable bit or link builds again), and leave out what the shipped archive leaves out."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError

from stagectl.ansible_collections.stagectl.staging.plugins.lookup.source_digest import source_digest

# What the project role passes for its default project_source_excludes (.git, __pycache__, *.pyc).
EXCLUDES = [f.format(p) for p in (".git", "__pycache__", "*.pyc") for f in ("{}", "{}/*", "*/{}", "*/{}/*")]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    (root / "shop" / "templates").mkdir(parents=True)
    (root / "manage.py").write_text("import sys\n")
    (root / "manage.py").chmod(0o755)
    (root / "shop" / "settings.py").write_text("DEBUG = False\n")
    (root / "shop" / "templates" / "home.html").write_text("<h1>shop</h1>\n")
    (root / "static").symlink_to("shop/templates")
    return root


def digest(root: Path) -> str:
    return source_digest(root, EXCLUDES)


def test_times_and_a_copy_do_not_count(tree: Path, tmp_path: Path) -> None:
    before = digest(tree)
    for path in tree.rglob("*"):
        os.utime(path, (1, 1), follow_symlinks=False)
    assert digest(tree) == before
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    assert digest(copy) == before


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "shop" / "settings.py").write_text("DEBUG = True\n"),
        lambda root: (root / "shop" / "settings.py").rename(root / "shop" / "base.py"),
        lambda root: (root / "shop" / "new.py").write_text(""),
        lambda root: (root / "shop" / "templates" / "home.html").unlink(),
        lambda root: (root / "manage.py").chmod(0o644),
        lambda root: (root / "empty").mkdir(),
        lambda root: ((root / "static").unlink(), (root / "static").symlink_to("shop")),
    ],
    ids=["content", "rename", "new file", "removed file", "executable bit", "new directory", "link target"],
)
def test_every_content_change_counts(tree: Path, change: object) -> None:
    before = digest(tree)
    change(tree)  # type: ignore[operator]
    assert digest(tree) != before


def test_what_the_archive_leaves_out_does_not_count(tree: Path) -> None:
    before = digest(tree)
    (tree / ".git").mkdir()
    (tree / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tree / "shop" / "__pycache__").mkdir()
    (tree / "shop" / "__pycache__" / "settings.cpython-313.pyc").write_bytes(b"\0")
    (tree / "shop" / "stray.pyc").write_bytes(b"\0")
    assert digest(tree) == before
    (tree / "shop" / "git.py").write_text("")
    assert digest(tree) != before, "only the patterns are left out, not names that contain them"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(AnsibleLookupError, match=f"{tmp_path / 'nope'} is not a directory"):
        source_digest(tmp_path / "nope", EXCLUDES)
