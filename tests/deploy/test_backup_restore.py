"""`stagectl backup run/list/restore` on the session's sandbox: a restore puts the backed-up rows
back into the live database and the app answers healthy on it; a backup id the server does not
have is refused with exit 2 and nothing is touched; with an off-site repository (restic over sftp
to the sandbox's own SFTP container), a backup whose local files are gone restores from there.

The project's rows are the demo app's notes, written and read through the project nginx."""

from __future__ import annotations

import json
import shlex
import subprocess
import uuid
from typing import Any

import yaml
from typer.testing import CliRunner

from stagectl import backup
from stagectl.cli import app
from stagectl.deploy import deploy
from stagectl.derived import derive
from stagectl.environment import ALL_VARS, VAULT, load_environment
from stagectl.sandbox import backup_target
from stagectl.vault import decrypt, read_password_file, write_vault
from tests.deploy.conftest import Deployed

PROJECT = "project2"
runner = CliRunner()


def _app(deployed: Deployed, method: str, path: str, body: str | None = None) -> tuple[int, str]:
    """An HTTP request to the app through the project nginx, from inside that container."""
    data = ["-H", "Content-Type: application/json", "--data-binary", "@-"] if body is not None else []
    proc = subprocess.run(
        ["docker", "exec", "-i", deployed.info.name, "docker", "exec", "-i", f"{PROJECT}-nginx",
         "curl", "-sS", "--max-time", "20", "-X", method, "-H", f"Host: {PROJECT}.sandbox.test",
         "-H", "X-Forwarded-Proto: https", *data, "-o", "-", "-w", "\n%{http_code}",
         f"http://127.0.0.1{path}"],
        input=body, capture_output=True, text=True, timeout=60, check=False,
    )
    text, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), text


def _notes(deployed: Deployed) -> list[str]:
    status, body = _app(deployed, "GET", "/notes/")
    assert status == 200, body
    return [note["text"] for note in json.loads(body)["notes"]]


def _write_note(deployed: Deployed, text: str) -> None:
    status, body = _app(deployed, "POST", "/notes/", json.dumps({"text": text}))
    assert status == 201, body


def _stagectl(deployed: Deployed, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--env", str(deployed.root),
                                 "--vault-password-file", str(deployed.vault_password_file)])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def _started(deployed: Deployed) -> str:
    """When the project's django container last started (changes when it is stopped and started)."""
    return deployed.sh(f"docker inspect --format '{{{{.State.StartedAt}}}}' {PROJECT}-django").strip()


def test_restore_puts_the_backed_up_rows_back(deployed: Deployed) -> None:
    kept, lost = f"kept {uuid.uuid4().hex[:8]}", f"lost {uuid.uuid4().hex[:8]}"
    _write_note(deployed, kept)

    code, output = _stagectl(deployed, "backup", "run", "--project", PROJECT)
    assert code == 0, output
    assert f"backup of {PROJECT} OK" in output, output
    listed = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT)
    assert listed.ok and listed.backups, listed
    newest = listed.backups[0]
    assert newest.project == PROJECT and newest.size > 0
    code, output = _stagectl(deployed, "backup", "list", "--project", PROJECT)
    assert code == 0 and PROJECT in output and "backups of 1 projects" in output, output

    _write_note(deployed, lost)
    assert {kept, lost} <= set(_notes(deployed))

    code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--at", newest.id, "--yes")
    assert code == 0, output
    assert f"backup restore of {PROJECT} OK" in output and "safety backup" in output, output

    notes = _notes(deployed)
    assert kept in notes and lost not in notes, notes
    assert _app(deployed, "GET", "/readyz")[0] == 200
    # The safety backup taken before the restore holds the row the restore replaced.
    after = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT)
    assert len(after.backups) == len(listed.backups) + 1, after.backups


def test_restore_of_an_unknown_backup_changes_nothing(deployed: Deployed) -> None:
    text = f"untouched {uuid.uuid4().hex[:8]}"
    _write_note(deployed, text)
    before = _notes(deployed)
    started = _started(deployed)
    listed = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT)

    code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT,
                             "--at", "20000101T000000Z", "--yes")
    assert code == 2, output
    assert f"project {PROJECT} has no backup 20000101T000000Z" in output and "Nothing was changed" in output, output

    assert _notes(deployed) == before
    assert _started(deployed) == started  # the app was not stopped
    again = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT)
    assert [b.id for b in again.backups] == [b.id for b in listed.backups]  # no safety backup either


def test_a_restore_that_fails_puts_the_live_database_back(deployed: Deployed) -> None:
    """The live database is set aside and its safety backup taken while the dump is restored: a
    dump that cannot be restored (cut short, with a checksum that matches, as a broken pg_dump
    would leave it) ends with the live rows back in place, the app healthy, no database of the
    restore and no half-written backup file left."""
    _write_note(deployed, f"backed up {uuid.uuid4().hex[:8]}")
    code, output = _stagectl(deployed, "backup", "run", "--project", PROJECT)
    assert code == 0, output
    broken = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT).backups[0]
    deployed.sh(f"f={shlex.quote(broken.path)}; head -c $(($(stat -c %s \"$f\") / 2)) \"$f\" >\"$f.cut\"; "
                f"mv \"$f.cut\" \"$f\"; cd \"${{f%/*}}\" && sha256sum \"${{f##*/}}\" >\"$f.sha256\"")
    _write_note(deployed, f"written after {uuid.uuid4().hex[:8]}")
    live = _notes(deployed)

    code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--at", broken.id, "--yes")
    assert code == 1, output
    assert "pg_restore of" in output and "nothing was lost" in output, output

    assert _notes(deployed) == live
    assert _app(deployed, "GET", "/readyz")[0] == 200
    partial = deployed.sh(f"find /opt/backups/{PROJECT} -name '.*.partial'")
    assert partial.strip() == "", partial  # the safety backup, stopped, left nothing half-written
    spec = derive(load_environment(deployed.root).env).project(PROJECT)
    left = deployed.sh(f"docker exec {spec.containers['postgres']} psql -XAtq -U {spec.database.user} "
                       "-d postgres -c \"SELECT datname FROM pg_database WHERE strpos(datname, '__') > 0\"")
    assert left.strip() == "", left  # neither the restore's new database nor the set-aside one
    deployed.sh(f"b={shlex.quote(broken.path.removesuffix('.dump'))}; rm -f \"$b\".dump \"$b\".dump.* \"$b\"-*")

    # A database set aside by an earlier restore (whose safety backup failed) holds the only copy
    # of what that restore replaced: a new restore refuses to start rather than drop it.
    psql = f"docker exec {spec.containers['postgres']} psql -XAtq -U {spec.database.user} -d postgres -c"
    aside = f"{spec.database.name}__prerestore"
    deployed.sh(f"{psql} 'CREATE DATABASE \"{aside}\"'")
    started = _started(deployed)
    try:
        code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--yes")
        assert code == 1, output
        assert f"the database {aside} is left from an earlier restore" in " ".join(output.split()), output
        assert _notes(deployed) == live and _started(deployed) == started  # the app was not stopped
    finally:
        deployed.sh(f"{psql} 'DROP DATABASE \"{aside}\"'")


def _shared_backups(deployed: Deployed) -> list[backup.Backup]:
    listed = backup.run_action(deployed.root, deployed.vault_password_file, "list", project="shared")
    assert listed.ok, listed
    return listed.backups


def test_the_shared_stacks_state_is_backed_up_checked_and_restored_part_by_part(deployed: Deployed) -> None:
    """Certificates, configuration and Alertmanager's data: each archived, each put back alone,
    with its service running on it afterwards; a damaged archive is refused before anything moves."""
    marker = uuid.uuid4().hex[:8]
    certs, data = "/etc/letsencrypt", "/opt/shared/alertmanager/data"
    # Files there at the backup must come back; files written after it must go.
    deployed.sh(f"echo kept > {certs}/before-{marker}; echo kept > {data}/before-{marker}")
    code, output = _stagectl(deployed, "backup", "run", "--project", "shared")
    assert code == 0 and "backup of shared OK" in output, output
    # Read while it runs: Docker reports a paused container unhealthy until its next check.
    assert deployed.sh("docker inspect -f '{{.State.Health.Status}}' shared-alertmanager-1").strip() == "healthy"
    backups = _shared_backups(deployed)
    newest = backups[0]
    assert newest.size > 0 and newest.path.endswith(f"shared-{newest.id}.parts"), newest
    parts = deployed.sh(f"cat {newest.path}").split()
    assert parts[:3] == ["certs", "config", "alertmanager"], parts
    code, output = _stagectl(deployed, "backup", "verify", "--project", "shared")
    assert code == 0 and "archive(s) match their checksums and read through" in output, output

    deployed.sh(f"rm {certs}/before-{marker} {data}/before-{marker}; echo new > {certs}/after-{marker};"
                f" echo new > {data}/after-{marker}; echo new > /opt/shared/after-{marker}")
    alertmanager_before = deployed.sh("docker inspect -f '{{.State.StartedAt}}' shared-alertmanager-1").strip()

    for what in ("certs", "alertmanager", "config"):
        code, output = _stagectl(deployed, "backup", "restore", "--what", what, "--at", newest.id, "--yes")
        assert code == 0, output
        assert f"backup restore of the shared stack's {what} OK" in output and "safety backup" in output, output
    for directory in (certs, data):
        assert deployed.sh(f"ls {directory}").split().count(f"before-{marker}") == 1, directory
        assert f"after-{marker}" not in deployed.sh(f"ls {directory}"), directory
    # The configuration archive holds the files of the backup; one written since stays.
    assert deployed.sh(f"cat /opt/shared/after-{marker}").strip() == "new"
    assert deployed.sh("ls /opt/shared/alertmanager").split() == ["config", "data"]
    assert deployed.sh("docker inspect -f '{{.State.Status}}' shared-alertmanager-1").strip() == "running"
    assert deployed.sh("docker inspect -f '{{.State.StartedAt}}' shared-alertmanager-1").strip() != alertmanager_before
    deployed.sh("docker exec shared-nginx-1 nginx -t -q -c /etc/nginx/stagectl/nginx.conf")
    # Each restore took a safety backup first.
    assert len(_shared_backups(deployed)) == len(backups) + 3

    # A damaged archive: refused, nothing set aside or restarted.
    damaged = newest.path.removesuffix(".parts") + "-alertmanager.tar.gz"
    deployed.sh(f"cp {damaged} /root/kept.tar.gz; printf 'x' >> {damaged}")
    started = deployed.sh("docker inspect -f '{{.State.StartedAt}}' shared-alertmanager-1").strip()
    try:
        code, output = _stagectl(deployed, "backup", "restore", "--what", "alertmanager", "--at", newest.id, "--yes")
        assert code == 1, output
        assert "does not match its checksum" in output, output
        assert deployed.sh("docker inspect -f '{{.State.StartedAt}}' shared-alertmanager-1").strip() == started
        assert deployed.sh("ls -d /opt/shared/alertmanager/data.prerestore-* 2>/dev/null || true").strip() == ""
    finally:
        deployed.sh(f"mv /root/kept.tar.gz {damaged}; rm -f /opt/shared/after-{marker}")

    code, output = _stagectl(deployed, "backup", "restore", "--what", "grafana", "--at", "20000101T000000Z", "--yes")
    assert code == 2 and "has no backup 20000101T000000Z" in output, output


def _redis(deployed: Deployed, *args: str) -> str:
    """redis-cli in PROJECT's Redis, with the password read there from Redis's own configuration."""
    script = 'REDISCLI_AUTH=$(sed -n "s/^requirepass //p" "$0") exec redis-cli --no-auth-warning "$@"'
    return deployed.sh(
        f"docker exec {PROJECT}-redis sh -c {shlex.quote(script)} "
        f"\"$(docker inspect -f '{{{{range .Args}}}}{{{{println .}}}}{{{{end}}}}' {PROJECT}-redis | grep . | tail -n 1)\" "
        f"{shlex.join(args)}"
    ).strip()


def test_a_queue_in_redis_is_backed_up_and_restored(deployed: Deployed) -> None:
    """A project whose Redis holds a worker's queue (its backup settings name Redis, as the role
    writes them for a project with a worker or scheduler): the snapshot goes into the backup and
    comes back in place of Redis's data, which then survives a restart."""
    conf = f"/etc/stagectl/backups/{PROJECT}.conf"
    deployed.sh(f"cp {conf} /root/kept.conf && printf 'REDIS_CONTAINER={PROJECT}-redis\\nREDIS_DATA=data/redis\\n' >> {conf}")
    try:
        _redis(deployed, "SET", "queue:kept", "job-1")
        code, output = _stagectl(deployed, "backup", "run", "--project", PROJECT)
        assert code == 0, output
        newest = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT).backups[0]
        rdb = newest.path.removesuffix(".dump") + "-redis.rdb"
        assert deployed.sh(f"head -c 5 {rdb}") == "REDIS"
        _redis(deployed, "SET", "queue:lost", "job-2")
        _redis(deployed, "DEL", "queue:kept")

        code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--what", "redis",
                                 "--at", newest.id, "--yes")
        assert code == 0, output
        assert f"backup restore of {PROJECT}'s Redis OK" in output and "safety backup" in output, output
        assert (_redis(deployed, "GET", "queue:kept"), _redis(deployed, "EXISTS", "queue:lost")) == ("job-1", "0")
        assert _app(deployed, "GET", "/readyz")[0] == 200
        deployed.sh(f"docker restart {PROJECT}-redis && sleep 2")
        assert _redis(deployed, "GET", "queue:kept") == "job-1"  # the snapshot became Redis's own data
    finally:
        deployed.sh(f"mv /root/kept.conf {conf}")
    code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--what", "redis", "--yes")
    assert code == 2 and f"project {PROJECT} backs up no Redis" in output, output


def test_uploads_are_restored_in_place_and_served_again(deployed: Deployed) -> None:
    """The media archive of a backup comes back in place of the current uploads: a file deleted
    since is served again, one uploaded since is gone, and the project nginx (a bind mount of the
    directory) serves the restored files without a restart."""
    media = f"/opt/projects/{PROJECT}/data/media"
    kept, lost = f"kept-{uuid.uuid4().hex[:8]}.txt", f"lost-{uuid.uuid4().hex[:8]}.txt"
    owner = deployed.sh(f"stat -c %u:%g {media}").strip()
    deployed.sh(f"echo restored > {media}/{kept} && chown {owner} {media}/{kept}")
    assert _app(deployed, "GET", f"/media/{kept}") == (200, "restored\n")
    code, output = _stagectl(deployed, "backup", "run", "--project", PROJECT)
    assert code == 0, output
    newest = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT).backups[0]
    deployed.sh(f"rm {media}/{kept} && echo new > {media}/{lost}")
    nginx_started = deployed.sh(f"docker inspect --format '{{{{.State.StartedAt}}}}' {PROJECT}-nginx").strip()

    code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--what", "media",
                             "--at", newest.id, "--yes")
    assert code == 0, output
    assert f"backup restore of {PROJECT}'s media OK" in output and "safety backup" in output, output
    assert _app(deployed, "GET", f"/media/{kept}") == (200, "restored\n")
    assert _app(deployed, "GET", f"/media/{lost}")[0] == 404
    assert deployed.sh(f"stat -c %u:%g {media}/{kept}").strip() == owner
    assert deployed.sh(f"ls -d {media}.prerestore-* 2>/dev/null || true").strip() == ""
    assert deployed.sh(f"docker inspect --format '{{{{.State.StartedAt}}}}' {PROJECT}-nginx").strip() == nginx_started
    assert _app(deployed, "GET", "/readyz")[0] == 200
    # The safety backup holds the upload the restore replaced.
    safety = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT).backups[0]
    archive = safety.path.removesuffix(".dump") + "-media.tar.gz"
    assert f"data/media/{lost}" in deployed.sh(f"tar -tzf {archive}")


def _with_remote(deployed: Deployed, target: backup_target.BackupTarget) -> None:
    """backups.remote in the environment, its secrets in the vault."""
    all_vars = deployed.root / ALL_VARS
    data: dict[str, Any] = yaml.safe_load(all_vars.read_text())
    data["backups"]["remote"] = {"repository": target.repository}
    all_vars.write_text(yaml.safe_dump(data, sort_keys=False))
    password = read_password_file(deployed.vault_password_file)
    secrets = decrypt(deployed.root / VAULT, password)
    secrets["vault_backups_remote"] = {"password": f"sandbox-restic-{uuid.uuid4().hex}",
                                       "ssh_key": target.ssh_key, "ssh_known_hosts": target.known_hosts}
    write_vault(deployed.root / VAULT, secrets, password)


def test_off_site_copy_restores_when_the_local_files_are_gone(deployed: Deployed) -> None:
    saved = {path: path.read_bytes() for path in (deployed.root / ALL_VARS, deployed.root / VAULT)}
    image = load_environment(deployed.root).env.settings.project_defaults.images.python
    target = backup_target.start(deployed.info.name, image)
    try:
        _with_remote(deployed, target)
        run = deploy(deployed.root, deployed.vault_password_file, project=PROJECT).run
        assert run.ok, [f"{f.task}: {f.message}" for f in run.failures]
        assert deployed.sh("stat -c '%a' /etc/stagectl/restic /etc/stagectl/restic/password").split() == ["700", "600"]

        kept, lost = f"off-site kept {uuid.uuid4().hex[:8]}", f"off-site lost {uuid.uuid4().hex[:8]}"
        _write_note(deployed, kept)
        code, output = _stagectl(deployed, "backup", "run", "--project", PROJECT)
        assert code == 0 and "off-site copy of backup" in output and "done" in output, output
        listed = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT)
        local = [b for b in listed.backups if b.where == "local"]
        remote = [b for b in listed.backups if b.where == "off-site"]
        assert local and remote and remote[0].id == local[0].id, listed.backups
        metrics = deployed.sh(f"cat /var/lib/stagectl/textfile/stagectl-backup-offsite-{PROJECT}.prom")
        assert f'stagectl_backup_offsite_last_run_success{{project="{PROJECT}"}} 1' in metrics

        _write_note(deployed, lost)
        deployed.sh(f"rm /opt/backups/{PROJECT}/{PROJECT}-{remote[0].id}*")
        code, output = _stagectl(deployed, "backup", "restore", "--project", PROJECT, "--from", "remote",
                                 "--at", remote[0].id, "--yes")
        assert code == 0, output
        notes = _notes(deployed)
        assert kept in notes and lost not in notes, notes
        assert _app(deployed, "GET", "/readyz")[0] == 200
        # The restore's safety backup stays on the server: its upload would have kept the app down.
        after = backup.run_action(deployed.root, deployed.vault_password_file, "list", project=PROJECT).backups
        safety = next(b for b in after if b.where == "local")
        assert safety.id > remote[0].id and safety.id not in {b.id for b in after if b.where == "off-site"}, after

        # A damaged repository (a pack file gone at the target): the weekly check fails and its
        # metric says so, which is what BackupOffsiteCheckFailed fires on (tests/alert_rules).
        check = "/usr/local/sbin/stagectl-backup check"
        deployed.sh(check, timeout=300)
        gone = deployed.sh(f"docker exec {backup_target.NAME} sh -c "
                           "'f=$(find /srv/restic/sandbox/data -type f | head -n 1); rm -- \"$f\"; echo \"$f\"'").strip()
        assert gone, "no pack file in the off-site repository"
        failed = deployed.sh(f"{check} 2>&1 && echo PASSED || echo FAILED", timeout=300)
        assert failed.rstrip().endswith("FAILED") and "check of" in failed, failed
        metrics = deployed.sh("cat /var/lib/stagectl/textfile/stagectl-backup-check.prom")
        assert "stagectl_backup_offsite_check_last_run_success 0" in metrics, metrics
    finally:
        for path, content in saved.items():
            path.write_bytes(content)
        # Later tests share the sandbox: without backups.remote the deploy takes restic's settings off.
        cleanup = deploy(deployed.root, deployed.vault_password_file, project=PROJECT).run
        backup_target.stop(deployed.info.name)
    assert cleanup.ok, [f"{f.task}: {f.message}" for f in cleanup.failures]
    assert deployed.sh("test -e /etc/stagectl/restic && echo left || echo gone").strip() == "gone"
    # And the weekly check with it: stopped, its units and its metrics file gone.
    left = deployed.sh("ls /etc/systemd/system/stagectl-backup-check.* /var/lib/stagectl/textfile/stagectl-backup-check.prom"
                       " 2>/dev/null || true; systemctl is-active stagectl-backup-check.timer || true")
    assert left.split() == ["inactive"], left
