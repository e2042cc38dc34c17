"""`sandbox`: a local rehearsal server on the local Docker engine, deployed like the real one."""

from __future__ import annotations

import datetime
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from stagectl.cli.common import console
from stagectl.cli.deploy import bootstrap, deploy
from stagectl.errors import StagectlError

app = typer.Typer(
    help="A local rehearsal server on the local Docker engine, deployed exactly like the real one.",
    no_args_is_help=True,
)
SandboxName = Annotated[str, typer.Option("--name", help="Container name of the sandbox.")]


def default_demo_app() -> Path:
    # A source checkout (editable install) has the reference app beside the package.
    return Path(__file__).resolve().parents[3] / "examples" / "demo-app"


@app.command("up")
def up(
    name: SandboxName = "stagectl-sandbox",
    ssh_port: Annotated[int, typer.Option(help="127.0.0.1 port for SSH (0: any free one).")] = 2222,
    http_port: Annotated[int, typer.Option(help="127.0.0.1 port for the server's port 80.")] = 8080,
    https_port: Annotated[int, typer.Option(help="127.0.0.1 port for the server's port 443.")] = 8443,
    demo_app: Annotated[Path | None, typer.Option(help="App deployed as beryl3 and project2.")] = None,
    deploy_too: Annotated[bool, typer.Option("--deploy", help="Also bootstrap and deploy the example.")] = False,
) -> None:
    """Start the sandbox server and write an environment pointing at it."""
    from stagectl.sandbox import acme, alert_sink, archive, mail_sink, server
    from stagectl.sandbox import environment as sandbox_env

    out = console()
    app_dir = demo_app or default_demo_app()
    if not (app_dir / "pyproject.toml").is_file():
        raise StagectlError(f"no Django app at {app_dir}", hint="pass --demo-app PATH (a uv project)")
    with out.status("starting the sandbox") as status:
        def progress(line: str) -> None:
            status.update(line)

        images = archive.ensure_archive(on_progress=progress)
        info = server.up(name, ssh_port, on_progress=progress, http_port=http_port,
                         https_port=https_port, archive_dir=images.path.parent)
        progress("starting the sandbox's ACME server")
        acme_server = acme.up(info.name)
        root, password_file = sandbox_env.default_environment_paths(info)
        written = sandbox_env.write_sandbox_environment(
            root, info, password_file, app_dir, preload_archives=[images.server_path], acme=acme_server
        )
    out.print(f"sandbox '{info.name}' {info.action}: ssh on 127.0.0.1:{info.ssh_port}, "
              f"http 127.0.0.1:{info.http_port}, https 127.0.0.1:{info.https_port}", markup=False)
    out.print(f"environment: {root}  (vault password file: {password_file})", markup=False)
    out.print(f"certificates: from the sandbox's ACME server (pebble) at {acme_server.directory}", markup=False)
    for component in written.disabled:
        out.print(f"left out: {component.service} ({component.image}): {component.reason}", markup=False)
    target = sandbox_env.bootstrap_target(info)
    env_args = shlex.join(["--env", str(root), "--vault-password-file", str(password_file)])
    if not deploy_too:
        out.print("next:", markup=False)
        out.print(f"  stagectl bootstrap {env_args} --as {target.login} --key {target.connect_key}", markup=False)
        out.print(f"  stagectl deploy {env_args}", markup=False)
        return
    bootstrap(login=target.login, env=root, key=target.connect_key, vault_password_file=password_file)
    deploy(env=root, project=None, check=False, vault_password_file=password_file)
    alert_sink.start(info.name, written.python_image)
    mail_sink.start(info.name, written.python_image)
    out.print(f"alerts go to the sandbox's webhook receiver and its mail relay: "
              f"stagectl sandbox alerts --name {info.name}", markup=False)


@app.command("alerts")
def alerts(
    name: SandboxName = "stagectl-sandbox",
    last: Annotated[int, typer.Option(help="Show the last N notifications.", min=1)] = 20,
) -> None:
    """The notifications Alertmanager sent to the sandbox's webhook receiver and its mail relay,
    newest last."""
    from stagectl.sandbox import alert_sink, mail_sink

    notifications = alert_sink.received(name)
    mails = mail_sink.received(name)
    table = Table(title=f"alerts received by sandbox '{name}'")
    for column in ("received", "status", "alert", "project", "severity", "summary"):
        table.add_column(column)
    for note in notifications[-last:]:
        when = datetime.datetime.fromtimestamp(note["received_at"]).strftime("%H:%M:%S")
        payload = note.get("payload")
        for alert in (payload.get("alerts") if isinstance(payload, dict) else None) or []:
            labels = alert.get("labels") or {}
            cells = (when, str(alert.get("status", "")), labels.get("alertname", ""), labels.get("project", ""),
                     labels.get("severity", ""), (alert.get("annotations") or {}).get("summary", ""))
            table.add_row(*(escape(str(cell)) for cell in cells))
    out = console()
    out.print(table)
    out.print(f"{len(notifications)} notifications in all", markup=False)
    relay = Table(title=f"mails accepted by the relay of sandbox '{name}' (STARTTLS and a login)")
    for column in ("received", "login", "to", "subject"):
        relay.add_column(column)
    for mail in mails[-last:]:
        when = datetime.datetime.fromtimestamp(mail["received_at"]).strftime("%H:%M:%S")
        row = (when, mail.get("user") or "", ", ".join(mail.get("to") or []), mail.get("subject") or "")
        relay.add_row(*(escape(str(cell)) for cell in row))
    out.print(relay)
    out.print(f"{len(mails)} mails in all", markup=False)


@app.command("down")
def down(
    name: SandboxName = "stagectl-sandbox",
    remove_data: Annotated[bool, typer.Option("--remove-data", help="Also delete its volumes (the server's data).")] = False,
) -> None:
    """Stop and remove the sandbox (its volumes, with the server's data, are kept unless --remove-data)."""
    from stagectl.sandbox import acme, server

    result = server.down(name, remove_data=remove_data)
    acme.down(name)
    kept = "removed" if result.volume_removed else "kept (use --remove-data to delete them)"
    volumes = f"volumes {', '.join(result.volumes)} {kept}" if result.volumes else "no volumes"
    container = "removed" if result.container_removed else "was not there"
    console().print(f"sandbox '{name}': container {container}; {volumes}", markup=False)


@app.command("ssh")
def ssh(
    name: SandboxName = "stagectl-sandbox",
    user: Annotated[str, typer.Option(help="ansible (after a deploy root may not log in), or root.")] = "ansible",
    command: Annotated[list[str] | None, typer.Argument(help="Command to run instead of a shell.")] = None,
) -> None:
    """Open a shell (or run a command) on the sandbox over SSH."""
    from stagectl.sandbox import server

    current = server.status(name)
    if current.info is None:
        raise StagectlError(f"sandbox '{name}' is not running", hint="start it: stagectl sandbox up")
    argv = server.ssh_command(current.info, user=user, command=command)
    os.execvp(argv[0], argv)


@app.command("status")
def status(name: SandboxName = "stagectl-sandbox") -> None:
    """Whether the sandbox runs, its ports and systemd state."""
    from stagectl.sandbox import server

    current = server.status(name)
    out = console()
    if not current.exists:
        out.print(f"sandbox '{name}' does not exist (start it: stagectl sandbox up)", markup=False)
        return
    ports = ", ".join(f"127.0.0.1:{host}->{inner}" for inner, host in sorted(current.ports.items()))
    out.print(f"sandbox '{name}': {current.state}, systemd {current.systemd_state or 'unknown'}; "
              f"ports {ports or 'none'}; volumes {', '.join((current.volume, *current.data_volumes))}"
              + ("" if current.image_current else " (older image: down and up to refresh)"), markup=False)
