"""Onboarding on a fresh sandbox: the time from `stagectl project add` through `stagectl deploy
--project` to the first HTTPS 200 of the new project's health path, for a third project whose image
is cached (the demo app, which the two example projects already run), and whether the other
projects' containers were left alone (same container ids). With --styles, the same for each fixture
app's build style (uv, pip, Poetry, own Dockerfile), whose images are built from nothing; each is
removed again with `project remove` (timed too).

    .venv/bin/python benchmarks/onboarding_benchmark.py [--styles]

Needs a Docker engine (scripts/testbed-setup.sh docker). Prints figures; asserts nothing. Talks
only to the sandbox it starts (127.0.0.1 and the local Docker bridge).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import yaml
from bench_sandbox import DEMO_APP, deployed_sandbox

from stagectl.deploy import deploy
from stagectl.environment import ALL_VARS
from stagectl.onboard import add_project, remove_project

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "apps"
EXAMPLE_PROJECTS = ("beryl3", "project2")
# Fixture directory -> (project name, its health path, --dockerfile).
STYLES = {
    "uv-app": ("uvapp", "/health/", None),
    "pip-app": ("pipapp", "/health/", None),
    "poetry-app": ("poetryapp", "/health/", None),
    "dockerfile-app": ("dockerapp", "/health/", "Dockerfile"),
}
WAIT_SECONDS = 120


def container_ids(server_name: str) -> dict[str, str]:
    out = subprocess.run(["docker", "exec", server_name, "docker", "ps", "--format", "{{.Names}}\t{{.ID}}"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return dict(line.split("\t") for line in out.splitlines() if line)


def https_status(port: int, host: str, path: str) -> int:
    proc = subprocess.run(
        ["curl", "-sk", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1", "-o", "/dev/null",
         "-w", "%{http_code}", f"https://{host}:{port}{path}"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    return int(proc.stdout or 0)


def wait_200(port: int, host: str, path: str) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if https_status(port, host, path) == 200:
            return True
        time.sleep(0.5)
    return False


def dockerfile_source(tmp: Path, root: Path) -> Path:
    """The own-Dockerfile fixture with the environment's Python image as its default base: no
    registry answers on the test bed, so the official image it names cannot be pulled."""
    copy = tmp / "dockerfile-app"
    shutil.copytree(FIXTURES / "dockerfile-app", copy, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    python = yaml.safe_load((root / ALL_VARS).read_text())["project_defaults"]["images"]["python"]
    dockerfile = copy / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ARG PYTHON_IMAGE=python:3.13-slim", f"ARG PYTHON_IMAGE={python}"))
    return copy


def onboard(label: str, root: Path, password_file: Path, server_name: str, https_port: int, name: str,
            source: Path, health: str, dockerfile: str | None = None, *, remove: bool) -> None:
    before = container_ids(server_name)
    others = {n: cid for n, cid in before.items() if n.startswith(tuple(f"{p}-" for p in EXAMPLE_PROJECTS))}
    started = time.monotonic()
    added = add_project(root, password_file, name, str(source), dockerfile=dockerfile)
    took_add = time.monotonic() - started
    report = deploy(root, password_file, project=name)
    took_deploy = time.monotonic() - started - took_add
    ok = report.run.ok and wait_200(https_port, added.project.domain, health)
    total = time.monotonic() - started
    after = container_ids(server_name)
    kept = sum(after.get(n) == cid for n, cid in others.items())
    outcome = "HTTPS 200" if ok else "FAILED (" + "; ".join(f"{f.task}: {f.message}" for f in report.run.failures)[:500] + ")"
    print(f"{label}: project add {took_add:.1f} s + deploy --project {took_deploy:.0f} s -> {outcome} after "
          f"{total:.0f} s (goal <= 90 s); other projects' containers unchanged: {kept} of {len(others)}",
          flush=True)
    if remove:
        started = time.monotonic()
        removed = remove_project(root, password_file, name, keep_data=False)
        ok = removed.removed.ok and (removed.refreshed is None or removed.refreshed.ok)
        print(f"{label}: project remove {time.monotonic() - started:.0f} s ({'ok' if ok else 'FAILED'})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--styles", action="store_true", help="also onboard each fixture app's build style")
    args = parser.parse_args()
    with deployed_sandbox() as sandbox:
        root, password_file, info = sandbox.root, sandbox.password_file, sandbox.info
        onboard("third project, image cached (demo app)", root, password_file, info.name, info.https_port,
                "shop", DEMO_APP, "/healthz", remove=args.styles)
        if args.styles:
            for fixture, (project, health, dockerfile) in STYLES.items():
                source = dockerfile_source(sandbox.state, root) if dockerfile else FIXTURES / fixture
                onboard(f"{fixture}, image built", root, password_file, info.name, info.https_port, project,
                        source, health, dockerfile, remove=True)


if __name__ == "__main__":
    main()
