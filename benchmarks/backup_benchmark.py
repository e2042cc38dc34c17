"""Backup figures on a fresh sandbox: `stagectl backup run`, `list`, `verify` and `restore` of one
project of the example, each timed end to end (the CLI's library call: playbook, SSH, the tool on
the server), beside the time the tool itself reports on the server.

    .venv/bin/python benchmarks/backup_benchmark.py [--rows N]

`--rows` fills the project's database with N extra rows first (a bigger dump). Needs a Docker
engine (scripts/testbed-setup.sh docker). Prints figures; asserts nothing. Talks only to the
sandbox it starts (127.0.0.1 and the local Docker bridge).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from stagectl import backup
from stagectl.deploy import bootstrap, deploy
from stagectl.derived import derive
from stagectl.environment import load_environment
from stagectl.sandbox import archive, server
from stagectl.sandbox.environment import bootstrap_target, write_sandbox_environment

DEMO_APP = Path(__file__).resolve().parents[1] / "examples" / "demo-app"
PROJECT = "beryl3"
T = TypeVar("T")


def timed(label: str, work: Callable[[], T]) -> T:
    started = time.monotonic()
    result = work()
    print(f"{label}: {time.monotonic() - started:.1f}s", flush=True)
    return result


def on_server(report: backup.BackupReport) -> None:
    """The durations the tool logged on the server ("... done in 3s", "... passed in 5s")."""
    for tool in report.tools:
        for message in tool.messages():
            found = re.search(r"\b(done|passed) in ([0-9]+)s", message)
            if found:
                print(f"  on the server: {message[:140]}", flush=True)
        if not tool.ok:
            print(f"  FAILED on {tool.host}: {'; '.join(tool.errors())}", flush=True)


def fill(name: str, root: Path, rows: int) -> None:
    """`rows` rows of about 1 KiB in a table of their own in the project's database."""
    spec = derive(load_environment(root).env).project(PROJECT)
    sql = (f"CREATE TABLE IF NOT EXISTS bench_rows (id serial PRIMARY KEY, body text); "
           f"INSERT INTO bench_rows (body) SELECT repeat(md5(random()::text), 32) FROM generate_series(1, {rows});")
    subprocess.run(
        ["docker", "exec", name, "docker", "exec", spec.containers["postgres"], "psql", "--quiet",
         f"--username={spec.database.user}", f"--dbname={spec.database.name}", "--command", sql],
        check=True, capture_output=True, timeout=600,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="extra rows of about 1 KiB before the backup")
    args = parser.parse_args()
    images = timed("stand-in images and archive (cached when built before)", archive.ensure_archive)
    name = f"stagectl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="stagectl-bench-") as tmp:
        state = Path(tmp)
        try:
            info = server.up(name, 0, state_dir=state / "s", http_port=0, https_port=0,
                             archive_dir=images.path.parent)
            root, password_file = state / "environment", state / "vault-pass"
            write_sandbox_environment(root, info, password_file, DEMO_APP, preload_archives=[images.server_path])
            target = bootstrap_target(info)
            assert bootstrap(root, password_file, target.login, connect_key=target.connect_key).ok
            assert timed("cold deploy", lambda: deploy(root, password_file)).run.ok
            if args.rows:
                timed(f"{args.rows} extra rows written", lambda: fill(name, root, args.rows))

            ran = timed(f"backup run --project {PROJECT}",
                        lambda: backup.run_action(root, password_file, "run", project=PROJECT))
            on_server(ran)
            listed = timed("backup list", lambda: backup.run_action(root, password_file, "list"))
            for item in listed.backups:
                print(f"  {item.project} {item.id} {item.size} bytes {item.verification}")
            verified = timed(f"backup verify --project {PROJECT}",
                             lambda: backup.run_action(root, password_file, "verify", project=PROJECT))
            on_server(verified)
            request = backup.check_restore(root, password_file, PROJECT)
            restored = timed(f"backup restore --project {PROJECT} (newest; safety backup included)",
                             lambda: backup.restore(request))
            on_server(restored)
        finally:
            server.down(name, remove_data=True)


if __name__ == "__main__":
    main()
