"""A deploy's validation is reused for an unchanged environment (stagectl.plan_cache): rendered
and checked once, then taken as kept, with the environment and its vault still checked on every
deploy; one changed byte validates again, and a failed validation is never kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stagectl import deploy as deploy_module
from stagectl import plan_cache
from stagectl.errors import StagectlError, ValidationFailed
from stagectl.plan import PlanReport
from stagectl.validate import Check
from tests.conftest import EnvFixture


class Plans:
    """The environments the real `plan` ran on (it renders and runs the validators)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.roots: list[Path] = []
        real = deploy_module.plan

        def recording(root: Path, *args: object, **kwargs: object) -> PlanReport:
            self.roots.append(root)
            return real(root, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(deploy_module, "plan", recording)


def _summary(report: PlanReport) -> tuple[object, ...]:
    return (report.hosts, [(f.host, f.dest, f.kind, f.mode, f.role) for f in report.files],
            [(c.tool, c.target, c.status) for c in report.checks], report.notes)


def test_an_unchanged_environment_is_rendered_and_checked_once(
    example_env: EnvFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plan_cache, "cache_directory", lambda: tmp_path / "plans")
    plans = Plans(monkeypatch)
    root, password = example_env.root, example_env.vault_password_file

    first = deploy_module._validated_plan(root, password, None)
    assert not first.cached and len(plans.roots) == 1 and first.files

    again = deploy_module._validated_plan(root, password, None)
    assert again.cached and len(plans.roots) == 1
    assert _summary(again) == _summary(first)

    # The environment is still loaded with its vault: a wrong password fails as without the cache.
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not the password\n")
    with pytest.raises(StagectlError):
        deploy_module._validated_plan(root, wrong, None)

    # One byte more in a file the render reads: rendered and checked again.
    staging = root / "group_vars" / "staging.yml"
    staging.write_text(staging.read_text() + "# edited\n")
    edited = deploy_module._validated_plan(root, password, None)
    assert not edited.cached and len(plans.roots) == 2

    # Files the render does not read (a git directory, an editor's backup) change nothing.
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "group_vars" / ".staging.yml.swp").write_text("x")
    assert deploy_module._validated_plan(root, password, None).cached and len(plans.roots) == 2


def test_a_failed_or_allocating_plan_is_never_kept(tmp_path: Path) -> None:
    directory = tmp_path / "plans"
    failed = PlanReport(hosts=["server"], files=[], checks=[Check("nginx", "/x.conf", "failed", "bad")])
    plan_cache.put(directory, "failed", failed)
    assert plan_cache.get(directory, "failed") is None
    allocating = PlanReport(hosts=["server"], files=[], checks=[], allocated={"beryl3": {"app_port": 8001}})
    plan_cache.put(directory, "allocating", allocating)
    assert plan_cache.get(directory, "allocating") is None
    passed = PlanReport(hosts=["server"], files=[], checks=[Check("nginx", "/x.conf", "passed")])
    plan_cache.put(directory, "passed", passed)
    assert plan_cache.get(directory, "passed") == PlanReport(
        hosts=["server"], files=[], checks=[Check("nginx", "/x.conf", "passed")], cached=True)
    # Only the most recent plans are kept.
    for index in range(plan_cache.KEEP + 5):
        plan_cache.put(directory, f"key{index}", passed)
        os.utime(directory / f"key{index}.json", (index, index))  # distinct times, oldest first
    assert len(list(directory.glob("*.json"))) == plan_cache.KEEP
    assert plan_cache.get(directory, f"key{plan_cache.KEEP + 4}") is not None
    # A kept plan that cannot be read is no plan, never an error.
    (directory / "passed.json").write_text("{")
    assert plan_cache.get(directory, "passed") is None


def test_the_cache_is_off_with_stagectl_no_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGECTL_NO_CACHE", "1")
    assert plan_cache.cache_directory() is None
    assert plan_cache.get(None, "any") is None


def test_a_failed_validation_still_refuses_the_deploy(
    example_env: EnvFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept failure would let a broken environment through: the failure is reported every time."""
    monkeypatch.setattr(plan_cache, "cache_directory", lambda: tmp_path / "plans")
    failing = PlanReport(hosts=["server"], files=[], checks=[Check("nginx", "/x.conf", "failed", "bad")])
    monkeypatch.setattr(deploy_module, "plan", lambda *args, **kwargs: failing)
    for _ in range(2):
        with pytest.raises(ValidationFailed, match="nginx /x.conf: bad"):
            deploy_module._validated_plan(example_env.root, example_env.vault_password_file, None)
    assert not (tmp_path / "plans").exists()
