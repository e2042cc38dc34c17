"""Wall time and peak memory of `stagectl plan` for the example and for a generated environment.

    .venv/bin/python benchmarks/plan_benchmark.py            # example (2 projects) and 50 projects
    .venv/bin/python benchmarks/plan_benchmark.py --projects 10

Prints figures; asserts nothing. Peak memory is the largest resident set of the stagectl process
itself and of the largest child it ran (ansible-playbook, ansible-lint, a validator).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from stagectl.environment import INVENTORY, VAULT
from stagectl.example import generated_projects
from stagectl.plan import plan
from stagectl.scaffold import init_environment
from stagectl.vault import decrypt, fill_missing, read_password_file, write_vault


def make_environment(base: Path, projects: int | None) -> tuple[Path, Path]:
    root, password_file = base / "env", base / "vault-pass"
    init_environment(root, password_file)
    if projects is not None:
        inventory = yaml.safe_load((root / INVENTORY).read_text())
        inventory["staging"]["vars"]["projects"] = generated_projects(projects)
        (root / INVENTORY).write_text(yaml.safe_dump(inventory, sort_keys=False))
        password = read_password_file(password_file)
        data = decrypt(root / VAULT, password)
        data["vault_projects"] = {}
        fill_missing(data, [p["name"] for p in inventory["staging"]["vars"]["projects"]])
        write_vault(root / VAULT, data, password)
    return root, password_file


def measure(label: str, projects: int | None) -> None:
    with tempfile.TemporaryDirectory(prefix="stagectl-bench-") as tmp:
        root, password_file = make_environment(Path(tmp), projects)
        started = time.monotonic()
        report = plan(root, Path(tmp) / "out", password_file)
        wall = time.monotonic() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = report.summary()
    failed = sum(c["failed"] for c in summary.values())
    print(
        f"{label}: wall {wall:.1f}s (render {report.render_seconds:.1f}s, checks "
        f"{report.check_seconds:.1f}s), files {len(report.files)}, checks {len(report.checks)} "
        f"({failed} failed), peak RSS stagectl {own:.0f} MiB, largest child {child:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=50, help="size of the generated environment")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        measure("example (2 projects)" if args.one == 0 else f"generated ({args.one} projects)",
                None if args.one == 0 else args.one)
        return
    # One process per measurement: peak memory figures are per process lifetime.
    for size in (0, args.projects):
        subprocess.run([sys.executable, __file__, "--one", str(size)], check=True)


if __name__ == "__main__":
    main()
