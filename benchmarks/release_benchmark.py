"""Releases under load on a fresh sandbox: for (a) a release of a changed app, (b) a release whose
app server never gets healthy, (c) a release whose migration fails, the requests a load loop made
during the deploy, how many failed, the deploy's duration and its switch time (how long the
traffic was on the release candidate while `django` was replaced; none when it was never switched).

    .venv/bin/python benchmarks/release_benchmark.py

Needs a Docker engine (scripts/testbed-setup.sh docker). Prints figures; asserts nothing. Talks
only to the sandbox it starts (127.0.0.1 and the local Docker bridge). The load loop is the one
tests/deploy/test_zero_downtime.py uses (stagectl.sandbox.load).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import yaml
from bench_sandbox import DEMO_APP, deployed_sandbox

from stagectl.deploy import deploy
from stagectl.environment import INVENTORY
from stagectl.sandbox.handover import watch_hand_over
from stagectl.sandbox.load import LoadResult, LoadTarget, background_load
from stagectl.sandbox.releases import NOOP_MIGRATION, failing_migration

PROJECT = "beryl3"

FAILING_MIGRATION = failing_migration("0002_benchmark")


def make_release(tmp: Path, name: str, *, broken: bool = False, failing_migration: bool = False) -> Path:
    target = tmp / name
    shutil.copytree(DEMO_APP, target, ignore=shutil.ignore_patterns(".venv", "__pycache__", ".ruff_cache"))
    (target / "RELEASE").write_text(f"{name}\n")
    migrations = target / "notes" / "migrations"
    (migrations / "0002_benchmark.py").write_text(NOOP_MIGRATION)
    if failing_migration:
        (migrations / "0003_fails.py").write_text(FAILING_MIGRATION)
    if broken:
        # The web process (gunicorn with this config) cannot start; manage.py never reads it.
        config = target / "gunicorn.conf.py"
        config.write_text('raise SystemExit("broken release")\n' + config.read_text())
    return target


def set_repo(root: Path, repo: Path) -> None:
    path = root / INVENTORY
    data = yaml.safe_load(path.read_text())
    for entry in data["staging"]["vars"]["projects"]:
        if entry["name"] == PROJECT:
            entry["repo"] = str(repo)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def scenario(label: str, root: Path, password_file: Path, server_name: str, https_port: int, repo: Path,
             min_requests: int) -> None:
    set_repo(root, repo)
    target = LoadTarget(port=https_port, server_name=f"{PROJECT}.sandbox.test")
    started = time.monotonic()
    with (watch_hand_over(server_name, PROJECT) as switch,
          background_load(target, connections=3, min_requests=min_requests, max_seconds=900) as load):
        report = deploy(root, password_file, project=PROJECT)
        took = time.monotonic() - started
    result = load.result or LoadResult()
    outcome = "deployed" if report.run.ok else "deploy failed"
    print(f"{label}: deploy {took:.0f} s, {outcome}; switch: {switch.summary()}; "
          f"load {result.summary()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-requests", type=int, default=10_000)
    args = parser.parse_args()
    with deployed_sandbox() as sandbox:
        good = make_release(sandbox.state, "bench-good")
        for label, repo in (
            ("(a) release of a changed app", good),
            ("(b) release that never gets healthy", make_release(sandbox.state, "bench-broken", broken=True)),
            ("(c) release whose migration fails", make_release(sandbox.state, "bench-bad-migration",
                                                               failing_migration=True)),
        ):
            scenario(label, sandbox.root, sandbox.password_file, sandbox.info.name, sandbox.info.https_port, repo,
                     args.min_requests)
            set_repo(sandbox.root, good)


if __name__ == "__main__":
    main()
