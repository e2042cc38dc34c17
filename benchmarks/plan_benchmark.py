"""Wall time, CPU time and peak memory of `stagectl plan` for the example and for generated
environments, on a cold and on a warm validator cache.

    .venv/bin/python benchmarks/plan_benchmark.py                    # example, 10, 50, 100, 300
    .venv/bin/python benchmarks/plan_benchmark.py --sizes 0 50       # 0 = the example (2 projects)

Prints figures; asserts nothing. Each size runs in its own process, with caches of its own:

- "new environment": the first plan of an environment, every file and playbook check runs. The
  collection's ansible-lint result is in the cache already: it depends only on the collection
  and the tool versions, so a machine pays it once per stagectl version (its time is printed).
- "warm cache": the same plan again (unchanged files are not validated again).
- "after install" (the example only): the first plan on an empty cache, ansible-lint included.

Peak memory is the largest resident set of the stagectl process itself and of the largest child
it ran (ansible-playbook, ansible-lint, a validator). CPU time (user + system, stagectl and its
children) is printed beside wall time: on a shared machine it is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from stagectl import validate
from stagectl.environment import INVENTORY, VAULT
from stagectl.example import generated_projects
from stagectl.plan import PlanReport, plan
from stagectl.scaffold import init_environment
from stagectl.validators.cache import ResultCache
from stagectl.vault import decrypt, fill_missing, read_password_file, write_vault

SIZES = (0, 10, 50, 100, 300)
RUNS = ("new environment", "warm cache")


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


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed_plan(root: Path, out: Path, password_file: Path) -> tuple[PlanReport, float, float]:
    wall, cpu = time.monotonic(), _cpu()
    report = plan(root, out, password_file)
    return report, time.monotonic() - wall, _cpu() - cpu


def measure(label: str, projects: int | None, runs: tuple[str, ...] = RUNS) -> None:
    with tempfile.TemporaryDirectory(prefix="stagectl-bench-") as tmp:
        root, password_file = make_environment(Path(tmp), projects)
        for run in runs:
            # "after install" on an empty cache; the others share one that starts with the
            # collection's lint result only.
            cache = Path(tmp) / ("cache-install" if run == "after install" else "cache")
            os.environ["XDG_CACHE_HOME"] = str(cache)
            if run == "new environment":
                started = time.monotonic()
                lint = validate.ansible_lint(ResultCache.default())
                print(f"{label}: collection lint (once per stagectl version) {time.monotonic() - started:.1f}s, "
                      f"{lint.status}", flush=True)
            report, wall, cpu = _timed_plan(root, Path(tmp) / "out", password_file)
            summary = report.summary()
            failed = sum(c["failed"] for c in summary.values())
            print(
                f"{label}, {run}: wall {wall:.1f}s (render {report.render_seconds:.1f}s, checks "
                f"{report.check_seconds:.1f}s), CPU {cpu:.1f}s, files {len(report.files)}, checks "
                f"{len(report.checks)} ({failed} failed)", flush=True,
            )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{label}: peak RSS stagectl {own:.0f} MiB, largest child {child:.0f} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="projects per generated environment; 0 is the example (2 projects)")
    parser.add_argument("--cold-only", action="store_true", help="skip the warm cache plan")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        runs = (("after install",) if args.one == 0 else ()) + RUNS[:1 if args.cold_only else 2]
        measure("example (2 projects)" if args.one == 0 else f"generated ({args.one} projects)",
                None if args.one == 0 else args.one, runs)
        return
    # One process per size: peak memory figures are per process lifetime.
    for size in args.sizes:
        subprocess.run([sys.executable, __file__, "--one", str(size), *(["--cold-only"] if args.cold_only else [])],
                       check=True)


if __name__ == "__main__":
    main()
