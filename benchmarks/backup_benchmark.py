"""Backup figures on a fresh sandbox: `stagectl backup run`, `list`, `verify` and `restore` of one
project of the example, each timed end to end (the CLI's library call: playbook, SSH, the tool on
the server), beside the time the tool itself reports on the server. Then, on the server itself:
a plain `pg_dump -Fc` of the database beside the backup tool's run (its overhead), the restore
beside the dump, and with an off-site repository (restic over SFTP to the sandbox's backup
target) the upload and the time to get the project back from the off-site copy alone (every
local backup file deleted first).

    .venv/bin/python benchmarks/backup_benchmark.py [--rows N] [--repeat N]

`--rows` fills the project's database with N extra rows of about 1 KiB of random text first
(300000: a database of a few hundred MB). Needs a Docker engine (scripts/testbed-setup.sh
docker). Prints figures; asserts nothing. Talks only to the sandbox it starts (127.0.0.1 and the
local Docker bridge).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from bench_sandbox import deployed_sandbox

from stagectl import backup
from stagectl.deploy import deploy
from stagectl.derived import ProjectView, derive
from stagectl.environment import ALL_VARS, VAULT, load_environment
from stagectl.sandbox import backup_target
from stagectl.vault import decrypt, read_password_file, write_vault

PROJECT = "beryl3"
TOOL = "/usr/local/sbin/stagectl-backup"
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
    """`rows` rows of about 1 KiB of random hex in a table of their own in the project's database:
    neither PostgreSQL's TOAST nor the dump's compression can shrink them much."""
    spec = _spec(root)
    sql = (f"CREATE TABLE IF NOT EXISTS bench_rows (id serial PRIMARY KEY, body text); "
           f"INSERT INTO bench_rows (body) SELECT (SELECT string_agg(md5(random()::text || g.j || s.i), '') "
           f"FROM generate_series(1, 32) AS g(j)) FROM generate_series(1, {rows}) AS s(i);")
    _psql(name, spec, sql, timeout=1800)
    size = _psql(name, spec, "SELECT pg_size_pretty(pg_database_size(current_database()))").strip()
    print(f"  database size: {size}", flush=True)


def _spec(root: Path) -> ProjectView:
    return derive(load_environment(root).env).project(PROJECT)


def _psql(name: str, spec: ProjectView, sql: str, timeout: float = 600) -> str:
    proc = subprocess.run(
        ["docker", "exec", name, "docker", "exec", spec.containers["postgres"], "psql", "--quiet",
         "--tuples-only", "--no-align", "--set=ON_ERROR_STOP=1", f"--username={spec.database.user}",
         f"--dbname={spec.database.name}", "--command", sql],
        check=False, capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(f"psql on the sandbox failed: {proc.stderr.strip()}\n  {sql}")
    return proc.stdout


def on_sandbox(name: str, script: str, timeout: float = 3600) -> float:
    """Run a shell script on the server as root; its wall time (it must succeed)."""
    started = time.monotonic()
    proc = subprocess.run(["docker", "exec", name, "bash", "-euo", "pipefail", "-c", script],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"on the sandbox: {script}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.monotonic() - started


def with_remote(root: Path, password_file: Path, target: backup_target.BackupTarget) -> None:
    """backups.remote in the environment, its secrets in the vault (as an operator writes them)."""
    all_vars = root / ALL_VARS
    data: dict[str, Any] = yaml.safe_load(all_vars.read_text())
    data["backups"]["remote"] = {"repository": target.repository}
    all_vars.write_text(yaml.safe_dump(data, sort_keys=False))
    password = read_password_file(password_file)
    secrets = decrypt(root / VAULT, password)
    secrets["vault_backups_remote"] = {"password": f"bench-restic-{uuid.uuid4().hex}",
                                       "ssh_key": target.ssh_key, "ssh_known_hosts": target.known_hosts}
    write_vault(root / VAULT, secrets, password)


def on_the_server(name: str, root: Path, password_file: Path, repeat: int) -> None:
    """The tool and pg_dump timed on the server itself (docker exec): no playbook, no SSH.
    Alternated `repeat` times, medians compared: one pair of runs is within the machine's noise."""
    spec = _spec(root)
    db, user, pg = spec.database.name, spec.database.user, spec.containers["postgres"]
    plain = f"/opt/backups/{PROJECT}/plain-pg_dump.dump"
    dumps: list[float] = []
    runs: list[float] = []
    for _ in range(repeat):
        dumps.append(on_sandbox(name, f"docker exec {pg} pg_dump --format=custom --username={user} {db} >{plain}"))
        on_sandbox(name, f"rm -f {plain}")
        runs.append(on_sandbox(name, f"{TOOL} run {PROJECT}"))
    dump, run = statistics.median(dumps), statistics.median(runs)
    # Each run against the plain dump just before it: the machine's drift between pairs cancels.
    paired = statistics.median(r / d for r, d in zip(runs, dumps, strict=True))
    print(f"plain pg_dump -Fc into a file beside the backups, on the server: median {dump:.1f}s of "
          f"{', '.join(f'{t:.1f}' for t in dumps)}", flush=True)
    print(f"stagectl-backup run on the server (dump with its checksum, config and media archives, prune): "
          f"median {run:.1f}s of {', '.join(f'{t:.1f}' for t in runs)} "
          f"({(run / dump - 1) * 100:+.0f}% over plain pg_dump; median of the {repeat} pairs "
          f"{(paired - 1) * 100:+.0f}%)", flush=True)
    restore = on_sandbox(name, f"{TOOL} restore {PROJECT} latest")
    print(f"stagectl-backup restore on the server (app stopped, database set aside, restore while its "
          f"safety backup is taken, migrate, healthy): {restore:.1f}s ({restore / dump:.1f}x the plain dump)", flush=True)

    media = on_sandbox(name, f"{TOOL} restore {PROJECT} latest media")
    print(f"stagectl-backup restore {PROJECT} latest media (app stopped, safety backup, uploads replaced, "
          f"healthy): {media:.1f}s", flush=True)

    shared = on_sandbox(name, f"{TOOL} run shared")
    print(f"stagectl-backup run shared on the server (certificates, configuration, Alertmanager and "
          f"Grafana data): {shared:.1f}s", flush=True)
    certs = on_sandbox(name, f"{TOOL} restore shared latest certs")
    print(f"stagectl-backup restore shared latest certs (safety backup, unpack, nginx -t, reload): "
          f"{certs:.1f}s", flush=True)

    image = load_environment(root).env.settings.project_defaults.images.python
    target = timed("off-site target (SFTP) started", lambda: backup_target.start(name, image))
    with_remote(root, password_file, target)
    assert timed("deploy with backups.remote", lambda: deploy(root, password_file, project=PROJECT)).run.ok
    first = on_sandbox(name, f"{TOOL} run {PROJECT}")
    print(f"stagectl-backup run with the first off-site copy (restic init and upload): {first:.1f}s, "
          f"upload about {first - run:.1f}s", flush=True)
    again = on_sandbox(name, f"{TOOL} run {PROJECT}")
    print(f"stagectl-backup run with a later off-site copy (deduplicated): {again:.1f}s, "
          f"upload about {again - run:.1f}s", flush=True)
    on_sandbox(name, f"rm -f /opt/backups/{PROJECT}/{PROJECT}-*")
    back = on_sandbox(name, f"{TOOL} restore {PROJECT} latest remote")
    print(f"project back from the off-site copy alone (local backups deleted; fetch, restore while "
          f"the safety backup is taken, migrate, healthy): {back:.1f}s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=0, help="extra rows of about 1 KiB before the backup")
    parser.add_argument("--repeat", type=int, default=3,
                        help="plain pg_dump and backup runs, alternated, whose medians are compared")
    args = parser.parse_args()
    with deployed_sandbox() as sandbox:
        name, root, password_file = sandbox.info.name, sandbox.root, sandbox.password_file
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
        on_the_server(name, root, password_file, args.repeat)


if __name__ == "__main__":
    main()
