"""The validator result cache: a pass is reused only for the same bytes and the same tool version;
a changed file or a new tool version runs the check again, and a failure is never reused."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from stagectl import validate
from stagectl.render import RenderedFile
from stagectl.validate import Check
from stagectl.validators import base, cache
from stagectl.validators.cache import ResultCache
from tests.conftest import missing_tool

HOST = "server"


class Runs:
    """Which validators actually ran (by executable name), recorded around the real `base.run`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        real = base.run

        def recording(args: list[str], **kwargs: object) -> base.Result:
            if "--version" not in args:
                self.names.append(Path(args[0]).name)
            return real(args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(base, "run", recording)

    def take(self) -> list[str]:
        names, self.names = self.names, []
        return names


def _file(out: Path, dest: str, kind: str, text: str) -> RenderedFile:
    local = out / HOST / dest.lstrip("/")
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text)
    return RenderedFile(host=HOST, dest=dest, local=local, kind=kind, mode="0644", role="test")


def _check(files: list[RenderedFile], results: ResultCache) -> list[Check]:
    return validate.run_checks(files, results=results)


def test_a_pass_is_reused_until_the_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if validate.tool_path("yamllint") is None:
        missing_tool("yamllint is not installed")
    runs = Runs(monkeypatch)
    results = ResultCache(tmp_path / "cache")
    config = _file(tmp_path / "out", "/opt/app/config.yml", "yaml", "a: 1\nb: [1, 2]\n")

    first = _check([config], results)
    assert [(c.tool, c.target, c.status) for c in first] == [("yamllint", "/opt/app/config.yml", "passed")]
    assert runs.take() == ["yamllint"]

    # Same bytes, even rendered elsewhere: the pass is taken from the cache.
    again = _file(tmp_path / "elsewhere", "/opt/app/config.yml", "yaml", "a: 1\nb: [1, 2]\n")
    assert _check([again], results) == first
    assert runs.take() == []

    # One byte more: validated again.
    config.local.write_text("a: 1\nb: [1, 2, 3]\n")
    assert [c.status for c in _check([config], results)] == ["passed"]
    assert runs.take() == ["yamllint"]

    # A failure names the file in yamllint's words, and is never taken from the cache.
    config.local.write_text("a: 1\na: 2\n")
    for _ in range(2):
        (failed,) = _check([config], results)
        assert failed.status == "failed"
        assert str(config.local) in failed.message and "duplication of key" in failed.message
        assert runs.take() == ["yamllint"]


def test_no_cache_runs_every_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if validate.tool_path("yamllint") is None:
        missing_tool("yamllint is not installed")
    runs = Runs(monkeypatch)
    config = _file(tmp_path / "out", "/opt/app/config.yml", "yaml", "a: 1\n")
    for _ in range(2):
        assert [c.status for c in _check([config], ResultCache(None))] == ["passed"]
        assert runs.take() == ["yamllint"]


def test_many_yaml_files_are_checked_in_one_run_each_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if validate.tool_path("yamllint") is None:
        missing_tool("yamllint is not installed")
    runs = Runs(monkeypatch)
    files = [_file(tmp_path / "out", f"/opt/app{i}/config.yml", "yaml", f"name: app{i}\n") for i in range(5)]
    files[3].local.write_text("name: [unclosed\n")
    checks = _check(files, ResultCache(tmp_path / "cache"))
    assert runs.take() == ["yamllint"]
    assert [(c.target, c.status) for c in checks] == [
        (f.dest, "failed" if i == 3 else "passed") for i, f in enumerate(files)
    ]
    assert str(files[3].local) in checks[3].message and "syntax error" in checks[3].message


def _fake_shellcheck(directory: Path) -> Path:
    """A stand-in shellcheck whose version is read from a file beside it (the script's own bytes
    stay the same, so only the version output differs)."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "shellcheck"
    script.write_text(
        "#!/bin/sh\n"
        'here=$(dirname "$0")\n'
        'if [ "$1" = "--version" ]; then echo "version: $(cat "$here/version")"; exit 0; fi\n'
        "exit 0\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    (directory / "version").write_text("0.9.0\n")
    return directory


def test_a_new_tool_version_runs_the_check_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("sh") is None:
        pytest.skip("no /bin/sh")
    bin_dir = _fake_shellcheck(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cache.forget_versions()
    runs = Runs(monkeypatch)
    results = ResultCache(tmp_path / "cache")
    script = _file(tmp_path / "out", "/usr/local/bin/backup", "shell", "#!/bin/sh\necho ok\n")

    assert [c.status for c in _check([script], results)] == ["passed"]
    assert _check([script], results)[0].status == "passed"
    assert runs.take() == ["shellcheck"], "the second plan took the pass from the cache"

    (bin_dir / "version").write_text("0.10.0\n")
    cache.forget_versions()  # a new process asks again; this one remembered the old answer
    assert [c.status for c in _check([script], results)] == ["passed"]
    assert runs.take() == ["shellcheck"]
    cache.forget_versions()


def test_an_unwritable_cache_is_not_an_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    results = ResultCache(blocked / "cache")
    key = cache.digest("tool", "1.0", "bytes")
    results.put(key, [cache.Cached("tool", "passed", "")])
    assert results.get(key) is None


def test_default_directory_follows_xdg_and_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(cache.NO_CACHE_ENV, raising=False)
    assert ResultCache.default().directory == tmp_path / "xdg" / "stagectl" / "checks"
    monkeypatch.setenv(cache.NO_CACHE_ENV, "1")
    assert not ResultCache.default().enabled


def test_collection_digest_follows_the_collection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stagectl import collection

    copy = tmp_path / "collections"
    shutil.copytree(collection.collections_path() / "ansible_collections", copy / "ansible_collections",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(collection, "collections_path", lambda: copy)
    before = validate.collection_digest()
    (collection.collection_root() / ".ansible").mkdir(exist_ok=True)
    (collection.collection_root() / ".ansible" / "scratch").write_text("written by ansible-lint")
    assert validate.collection_digest() == before, "the tools' own scratch files do not count"
    playbook = collection.playbook("site")
    playbook.write_text(playbook.read_text() + "\n")
    assert validate.collection_digest() != before
