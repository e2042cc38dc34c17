"""The `stagectl` command line. Commands stay thin: they call library functions and present results.
Typed errors from below become one clear message and exit code 2; nothing prints a traceback for a
user's mistake."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stagectl import environment, troubleshooting, vault
from stagectl import plan as plan_mod
from stagectl.errors import EnvironmentInvalid, Interrupted, StagectlError
from stagectl.runner import ProgressCallback, RunResult

if TYPE_CHECKING:
    from stagectl.backup import BackupReport
    from stagectl.deploy import DeployReport
    from stagectl.status import ProjectStatus

app = typer.Typer(
    help="One declarative environment to a running, monitored, backed-up Docker staging server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
secrets_app = typer.Typer(help="Secrets in the ansible-vault file.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
sandbox_app = typer.Typer(
    help="A local rehearsal server on the local Docker engine, deployed exactly like the real one.",
    no_args_is_help=True,
)
app.add_typer(sandbox_app, name="sandbox")
alert_app = typer.Typer(help="Alerting: prove that alerts reach their receivers.", no_args_is_help=True)
app.add_typer(alert_app, name="alert")
T = TypeVar("T")
project_app = typer.Typer(help="Onboard a Django project, or take one off the server.", no_args_is_help=True)
app.add_typer(project_app, name="project")
SandboxName = Annotated[str, typer.Option("--name", help="Container name of the sandbox.")]

EnvDir = Annotated[
    Path,
    typer.Option("--env", "-e", help="The environment directory (from `stagectl init`).", envvar="STAGECTL_ENV"),
]
VaultFile = Annotated[
    Path | None,
    typer.Option(
        "--vault-password-file",
        help="File holding the vault password [default: ~/.config/stagectl/<env dir name>.vault-pass].",
        envvar=environment.VAULT_PASSWORD_ENV,
    ),
]


def _console() -> Console:
    return Console(stderr=False, highlight=False, soft_wrap=True)


def _fail(error: StagectlError) -> NoReturn:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if isinstance(error, EnvironmentInvalid):
        err.print(f"[bold red]error:[/] {error.args[0]}:", markup=True)
        for problem in error.problems:
            err.print(f"  - {problem}", markup=False)
    else:
        err.print("[bold red]error:[/] ", end="", markup=True)
        err.print(str(error), markup=False)
        if error.hint:
            err.print(f"  hint: {error.hint}", markup=False)
    raise typer.Exit(code=2)


def _vault_file(root: Path, given: Path | None) -> Path:
    return given if given is not None else environment.default_vault_password_file(root)


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the environment (created if missing).")],
    vault_password_file: VaultFile = None,
) -> None:
    """Scaffold the Ansible layout with the example projects and a vault of generated secrets."""
    from stagectl.scaffold import init_environment

    password_file = _vault_file(directory, vault_password_file)
    try:
        written = init_environment(directory, password_file)
    except StagectlError as exc:
        _fail(exc)
    console = _console()
    console.print(f"Environment written to [bold]{directory}[/]:")
    for path in written:
        console.print(f"  {path.relative_to(directory)}", markup=False)
    console.print(f"Vault password file: {password_file} (mode 0600, outside the environment; back it up)", markup=False)
    console.print("Next: stagectl plan " + shlex.join(["--env", str(directory)]), markup=False)


@app.command()
def plan(
    env: EnvDir = Path("."),
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Keep the rendered files here (default: a temporary directory)."),
    ] = None,
    vault_password_file: VaultFile = None,
) -> None:
    """Validate the environment, render every file for every host and check it with upstream tools."""
    console = _console()
    keep = out is not None
    out_dir = out if out is not None else Path(tempfile.mkdtemp(prefix="stagectl-plan-"))
    try:
        report = _run_with_progress(
            console, "validating the environment",
            lambda progress: plan_mod.plan(env, out_dir, _vault_file(env, vault_password_file), on_progress=progress),
        )
    except StagectlError as exc:
        _fail(exc)
    finally:
        if not keep:
            # The rendered files hold secrets: a temporary render never outlives the command.
            shutil.rmtree(out_dir, ignore_errors=True)
    _print_plan(console, report, out_dir if keep else None)
    if not report.ok:
        raise typer.Exit(code=1)


def _print_plan(console: Console, report: plan_mod.PlanReport, kept: Path | None) -> None:
    where = "written to inventory/staging.yml" if report.ok else "not written: the plan failed"
    for name, ports in report.allocated.items():
        console.print(f"allocated ports for {name}: {ports} ({where})", markup=False)
    failed = [c for c in report.checks if c.status == "failed"]
    for check in failed:
        console.print(f"[bold red]FAILED[/] {check.tool} {check.target}", markup=True)
        console.print("  " + check.message.strip().replace("\n", "\n  "), markup=False)
    table = Table(title="stagectl plan", show_lines=False)
    table.add_column("check")
    table.add_column("passed", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("skipped", justify="right")
    for tool, counts in report.summary().items():
        table.add_row(tool, str(counts["passed"]), str(counts["failed"]), str(counts["skipped"]))
    console.print(table)
    for check in report.checks:
        if check.status == "skipped":
            console.print(f"skipped {check.tool} on {check.target}: {check.message}", markup=False)
    for note in report.notes:
        console.print(f"[bold yellow]WARNING[/] {escape(note)}", markup=True)
    hosts = ", ".join(report.hosts)
    console.print(
        f"{len(report.files)} files rendered for {hosts} in {report.render_seconds:.1f}s; "
        f"checks took {report.check_seconds:.1f}s."
        + (f" Rendered files kept in {kept}." if kept else ""),
        markup=False,
    )
    console.print("[bold green]plan OK[/]" if report.ok else "[bold red]plan FAILED[/]")


def _run_with_progress(console: Console, title: str, work: Callable[[ProgressCallback], T]) -> T:
    """Run `work(progress)` under a live status line: task, host, elapsed."""
    with console.status(title) as status:
        def progress(task: str, host: str, elapsed: float) -> None:
            status.update(f"[{elapsed:6.1f}s] {host}: {task}")

        return work(progress)


def _print_run(console: Console, title: str, result: RunResult, *, check: bool = False) -> None:
    for failure in result.failures:
        console.print(f"[bold red]FAILED[/] {failure.host}: {failure.task}", markup=True)
        console.print("  " + failure.message.strip().replace("\n", "\n  "), markup=False)
        known = troubleshooting.explain(failure.message)
        if known:
            console.print(f"  cause: {known.explanation}\n  fix: {known.fix}", markup=False)
    for error in result.errors:
        console.print(error, markup=False)
    table = Table(title=f"{title}{' (check mode: nothing changed)' if check else ''}")
    for column in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="left" if column == "host" else "right")
    for host, stats in sorted(result.hosts.items()):
        table.add_row(host, str(stats.ok), str(stats.changed), str(stats.failed), str(stats.unreachable),
                      str(stats.skipped))
    console.print(table)
    verdict = "[bold green]OK[/]" if result.ok else "[bold red]FAILED[/]"
    console.print(f"{title} {verdict} in {result.seconds:.1f}s ({result.tasks} tasks)")


@app.command()
def bootstrap(
    login: Annotated[str, typer.Option("--as", help="Who to log in as the first time, e.g. root@HOST.")],
    env: EnvDir = Path("."),
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Private key for that first login (default: the inventory's)."),
    ] = None,
    vault_password_file: VaultFile = None,
) -> None:
    """Prepare a fresh server: Python, the `ansible` user, passwordless sudo, its SSH key."""
    from stagectl.deploy import bootstrap as run_bootstrap

    console = _console()
    try:
        result = _run_with_progress(
            console, "bootstrapping",
            lambda progress: run_bootstrap(env, _vault_file(env, vault_password_file), login,
                                           connect_key=key, on_progress=progress),
        )
    except StagectlError as exc:
        _fail(exc)
    _print_run(console, "bootstrap", result)
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def deploy(
    env: EnvDir = Path("."),
    project: Annotated[str | None, typer.Option("--project", "-p", help="Deploy only this project.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Show what would change (with diffs); change nothing.")] = False,
    vault_password_file: VaultFile = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="After the summary, list the slowest tasks and where the time went.")
    ] = False,
) -> None:
    """Validate, then run the deployment phases (or one project's stack)."""
    from stagectl.deploy import deploy as run_deploy

    console = _console()
    try:
        report = _run_with_progress(
            console, "validating and rendering",
            lambda progress: run_deploy(env, _vault_file(env, vault_password_file), project=project,
                                        check=check, on_progress=progress),
        )
    except StagectlError as exc:
        _fail(exc)
    console.print(f"validated {len(report.plan.files)} files ({len(report.plan.checks)} checks passed)", markup=False)
    _print_run(console, f"deploy{' ' + project if project else ''}", report.run, check=check)
    if profile:
        _print_profile(console, report)
    if not report.run.ok:
        raise typer.Exit(code=1)


def _print_profile(console: Console, report: DeployReport, count: int = 15) -> None:
    run = report.run
    table = Table(title=f"slowest tasks ({len(run.timings)} task runs)")
    for column in ("seconds", "share", "host", "role", "task"):
        table.add_column(column, justify="right" if column in ("seconds", "share") else "left")
    for timing in run.slowest(count):
        share = timing.seconds / run.seconds if run.seconds else 0.0
        table.add_row(f"{timing.seconds:.2f}", f"{share:.0%}", timing.host, timing.role or "-", timing.task)
    console.print(table)
    in_tasks = sum(t.seconds for t in run.timings)
    console.print(
        f"validation and rendering {report.plan.render_seconds + report.plan.check_seconds:.1f}s; "
        f"ansible {run.seconds:.1f}s, of which {in_tasks:.1f}s in tasks on hosts",
        markup=False,
    )


@app.command()
def doctor(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """The troubleshooting guide as checks: each failing one with its fix. Changes nothing."""
    from stagectl.doctor import run_doctor

    console = _console()
    try:
        report = _run_with_progress(
            console, "checking",
            lambda progress: run_doctor(env, _vault_file(env, vault_password_file), progress),
        )
    except StagectlError as exc:
        _fail(exc)
    table = Table(title="stagectl doctor")
    for column in ("host", "check", "result", "detail"):
        table.add_column(column)
    style = {"ok": "green", "failed": "bold red", "skipped": "yellow"}
    for check in report:
        table.add_row(check.host, check.name, f"[{style[check.status]}]{check.status}[/]", check.detail)
    console.print(table)
    for check in report:
        if check.status == "failed" and check.fix:
            console.print(f"fix for {check.name} on {check.host}: {check.fix}", markup=False)
    failed = sum(1 for c in report if c.status == "failed")
    console.print(f"{len(report)} checks, {failed} failed, in {report.seconds:.1f}s")
    if failed:
        raise typer.Exit(code=1)


@app.command()
def status(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Stacks, scrape targets, firing alerts, last backup (local and off-site) and certificate expiry, per project.
    Changes nothing; exit 1 when anything needs attention."""
    from stagectl import status as status_mod

    console = _console()
    try:
        report = _run_with_progress(
            console, "reading the status",
            lambda progress: status_mod.run_status(env, _vault_file(env, vault_password_file), progress),
        )
    except StagectlError as exc:
        _fail(exc)
    for host in report:
        table = Table(title=f"stagectl status: {host.host}")
        for column in ("project", "stack", "targets", "alerts", "last backup", "off-site", "certificates"):
            table.add_column(column)
        for project in host.projects:
            table.add_row(project.name, *_status_cells(project))
        if host.projects:
            console.print(table)
        for error in host.errors:
            console.print(f"[bold red]{host.host}:[/] ", end="", markup=True)
            console.print(error, markup=False)
        for line in status_mod.summary_lines(host.projects):
            console.print(f"  {line}", markup=False)
    verdict = "[bold green]all well[/]" if report.ok else "[bold red]needs attention[/]"
    console.print(f"status {verdict} ({report.seconds:.1f}s)")
    if not report.ok:
        raise typer.Exit(code=1)


def _status_cells(project: ProjectStatus) -> list[str]:
    from stagectl.status import CERTIFICATE_MIN_DAYS, age

    def mark(ok: bool, text: str) -> str:
        return f"[green]{text}[/]" if ok else f"[bold red]{text}[/]"

    if project.stack_error:
        stack = mark(False, project.stack_error)
    else:
        up = project.services - len(project.problems)
        stack = mark(project.stack_ok, f"{up}/{project.services} up")
    down = len(project.targets_down)
    targets = mark(not down, f"{len(project.targets) - down}/{len(project.targets)} up") if project.targets else "-"
    alerts = (
        mark(False, ", ".join(sorted({f"{a.name} ({a.severity})" for a in project.alerts})))
        if project.alerts else mark(True, "none")
    )
    backup = "-" if project.backup_age is None else mark(project.backup_ok, f"{age(project.backup_age)} ago")
    offsite = "-" if project.offsite_age is None else mark(project.offsite_ok, f"{age(project.offsite_age)} ago")
    certificates = ", ".join(
        mark(c.days_left >= CERTIFICATE_MIN_DAYS, f"{c.domain} {c.days_left:.0f}d") for c in project.certificates
    ) or "-"
    return [stack, targets, alerts, backup, offsite, certificates]


@alert_app.command("test")
def alert_test(
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Label the alert with this project [default: shared].")
    ] = None,
    timeout: Annotated[int, typer.Option(help="Seconds to wait for every receiver.", min=5, max=600)] = 60,
) -> None:
    """Send a test alert through Alertmanager to every configured receiver, then resolve it."""
    from stagectl.alerts import FIXES, TEST_ALERT, run_alert_test

    console = _console()
    try:
        report = _run_with_progress(
            console, "sending a test alert",
            lambda progress: run_alert_test(
                env, _vault_file(env, vault_password_file), project, progress, timeout=timeout
            ),
        )
    except StagectlError as exc:
        _fail(exc)
    table = Table(title=f"stagectl alert test ({TEST_ALERT})")
    for column in ("host", "receiver", "integration", "result", "delivered", "failed"):
        table.add_column(column)
    for result in report:
        receivers = ", ".join(result.receivers) or "-"
        if result.error:
            table.add_row(result.host, receivers, "-", "[bold red]not sent[/]", "-", "-")
        elif not result.deliveries:
            accepted = "accepted, no receiver configured" if result.accepted else "not accepted"
            table.add_row(result.host, receivers, "-", f"[yellow]{accepted}[/]", "-", "-")
        for delivery in result.deliveries:
            style = "green" if delivery.ok else "bold red"
            table.add_row(result.host, receivers, delivery.integration, f"[{style}]{delivery.outcome}[/]",
                          f"{delivery.delivered}/{delivery.expected}", str(delivery.failed))
    console.print(table)
    for result in report:
        if result.error:
            console.print(f"{result.host}: {result.error}", markup=False)
        if not result.error and not result.deliveries:
            console.print(
                f"{result.host}: the alert reached Alertmanager, but no receiver is configured: set "
                "alerting.email_to or alerting.webhook_urls in group_vars/staging.yml and deploy",
                markup=False,
            )
        for delivery in result.deliveries:
            if not delivery.ok:
                console.print(f"{result.host}: {delivery.integration} {delivery.outcome}: {FIXES[delivery.integration]}",
                              markup=False)
        if result.accepted:
            console.print(f"{result.host}: test id {result.test_id} (label test_id), resolved after the test",
                          markup=False)
    verdict = "[bold green]delivered[/]" if report.ok else "[bold red]FAILED[/]"
    console.print(f"alert test {verdict} in {report.seconds:.1f}s")
    if not report.ok:
        raise typer.Exit(code=1)


@app.command()
def dns(
    env: EnvDir = Path("."),
    check: Annotated[bool, typer.Option("--check/--no-check", help="Also resolve each name here.")] = True,
) -> None:
    """The A records the environment needs, and whether they resolve."""
    import socket

    from stagectl.derived import derive
    from stagectl.doctor import judge_dns

    console = _console()
    try:
        loaded = environment.load_environment(env)
    except StagectlError as exc:
        _fail(exc)
    names = [record["name"] for record in derive(loaded.env)["dns_records"]]
    table = Table(title="DNS records")
    for column in ("record", "type", "value", "resolves"):
        table.add_column(column)
    failed = 0
    for host, spec in loaded.env.inventory.staging.hosts.items():
        address = spec.ansible_host if spec else host
        results = {r.name.removeprefix("dns "): r for r in judge_dns(host, address, names, socket.getaddrinfo)} if check else {}
        for name in names:
            result = results.get(name)
            failed += bool(result and result.status == "failed")
            table.add_row(name, "A", address, (f"{result.status}: {result.detail}" if result else "not checked"))
    console.print(table)
    if failed:
        raise typer.Exit(code=1)


def _default_demo_app() -> Path:
    # A source checkout (editable install) has the reference app beside the package.
    return Path(__file__).resolve().parents[2] / "examples" / "demo-app"


@sandbox_app.command("up")
def sandbox_up(
    name: SandboxName = "stagectl-sandbox",
    ssh_port: Annotated[int, typer.Option(help="127.0.0.1 port for SSH (0: any free one).")] = 2222,
    http_port: Annotated[int, typer.Option(help="127.0.0.1 port for the server's port 80.")] = 8080,
    https_port: Annotated[int, typer.Option(help="127.0.0.1 port for the server's port 443.")] = 8443,
    demo_app: Annotated[Path | None, typer.Option(help="App deployed as beryl3 and project2.")] = None,
    deploy_too: Annotated[bool, typer.Option("--deploy", help="Also bootstrap and deploy the example.")] = False,
) -> None:
    """Start the sandbox server and write an environment pointing at it."""
    from stagectl.sandbox import acme, alert_sink, archive, server
    from stagectl.sandbox import environment as sandbox_env

    console = _console()
    app_dir = demo_app or _default_demo_app()
    try:
        if not (app_dir / "pyproject.toml").is_file():
            raise StagectlError(f"no Django app at {app_dir}", hint="pass --demo-app PATH (a uv project)")
        with console.status("starting the sandbox") as status:
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
    except StagectlError as exc:
        _fail(exc)
    console.print(f"sandbox '{info.name}' {info.action}: ssh on 127.0.0.1:{info.ssh_port}, "
                  f"http 127.0.0.1:{info.http_port}, https 127.0.0.1:{info.https_port}", markup=False)
    console.print(f"environment: {root}  (vault password file: {password_file})", markup=False)
    console.print(f"certificates: from the sandbox's ACME server (pebble) at {acme_server.directory}", markup=False)
    for component in written.disabled:
        console.print(f"left out: {component.service} ({component.image}): {component.reason}", markup=False)
    target = sandbox_env.bootstrap_target(info)
    env_args = shlex.join(["--env", str(root), "--vault-password-file", str(password_file)])
    if not deploy_too:
        console.print("next:", markup=False)
        console.print(f"  stagectl bootstrap {env_args} --as {target.login} --key {target.connect_key}", markup=False)
        console.print(f"  stagectl deploy {env_args}", markup=False)
        return
    bootstrap(login=target.login, env=root, key=target.connect_key, vault_password_file=password_file)
    deploy(env=root, project=None, check=False, vault_password_file=password_file)
    try:
        alert_sink.start(info.name, written.python_image)
    except StagectlError as exc:
        _fail(exc)
    console.print(f"alerts go to the sandbox's webhook receiver: stagectl sandbox alerts --name {info.name}",
                  markup=False)


@sandbox_app.command("alerts")
def sandbox_alerts(
    name: SandboxName = "stagectl-sandbox",
    last: Annotated[int, typer.Option(help="Show the last N notifications.", min=1)] = 20,
) -> None:
    """The notifications Alertmanager sent to the sandbox's webhook receiver, newest last."""
    import datetime

    from rich.markup import escape

    from stagectl.sandbox import alert_sink

    console = _console()
    try:
        notifications = alert_sink.received(name)
    except StagectlError as exc:
        _fail(exc)
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
    console.print(table)
    console.print(f"{len(notifications)} notifications in all", markup=False)


@sandbox_app.command("down")
def sandbox_down(
    name: SandboxName = "stagectl-sandbox",
    remove_data: Annotated[bool, typer.Option("--remove-data", help="Also delete its volumes (the server's data).")] = False,
) -> None:
    """Stop and remove the sandbox (its volumes, with the server's data, are kept unless --remove-data)."""
    from stagectl.sandbox import acme, server

    try:
        result = server.down(name, remove_data=remove_data)
        acme.down(name)
    except StagectlError as exc:
        _fail(exc)
    kept = "removed" if result.volume_removed else "kept (use --remove-data to delete them)"
    volumes = f"volumes {', '.join(result.volumes)} {kept}" if result.volumes else "no volumes"
    container = "removed" if result.container_removed else "was not there"
    _console().print(f"sandbox '{name}': container {container}; {volumes}", markup=False)


@sandbox_app.command("ssh")
def sandbox_ssh(
    name: SandboxName = "stagectl-sandbox",
    user: Annotated[str, typer.Option(help="ansible (after a deploy root may not log in), or root.")] = "ansible",
    command: Annotated[list[str] | None, typer.Argument(help="Command to run instead of a shell.")] = None,
) -> None:
    """Open a shell (or run a command) on the sandbox over SSH."""
    from stagectl.sandbox import server

    try:
        current = server.status(name)
        if current.info is None:
            raise StagectlError(f"sandbox '{name}' is not running", hint="start it: stagectl sandbox up")
        argv = server.ssh_command(current.info, user=user, command=command)
    except StagectlError as exc:
        _fail(exc)
    os.execvp(argv[0], argv)


@sandbox_app.command("status")
def sandbox_status(name: SandboxName = "stagectl-sandbox") -> None:
    """Whether the sandbox runs, its ports and systemd state."""
    from stagectl.sandbox import server

    try:
        current = server.status(name)
    except StagectlError as exc:
        _fail(exc)
    console = _console()
    if not current.exists:
        console.print(f"sandbox '{name}' does not exist (start it: stagectl sandbox up)", markup=False)
        return
    ports = ", ".join(f"127.0.0.1:{host}->{inner}" for inner, host in sorted(current.ports.items()))
    console.print(f"sandbox '{name}': {current.state}, systemd {current.systemd_state or 'unknown'}; "
                  f"ports {ports or 'none'}; volumes {', '.join((current.volume, *current.data_volumes))}"
                  + ("" if current.image_current else " (older image: down and up to refresh)"), markup=False)


@secrets_app.command("generate")
def secrets_generate(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Add secrets missing from the vault (new projects, new keys); existing secrets are kept."""
    try:
        names = plan_mod.project_names(env)
        app_secrets = plan_mod.project_app_secrets(env)
        password_file = _vault_file(env, vault_password_file)
        password = vault.read_password_file(password_file)
        data = vault.decrypt(env / environment.VAULT, password)
        added = vault.fill_missing(data, names, app_secrets)
        if added:
            vault.write_vault(env / environment.VAULT, data, password)
    except StagectlError as exc:
        _fail(exc)
    console = _console()
    if added:
        console.print("added to the vault: " + ", ".join(added), markup=False)
    else:
        console.print("the vault already holds every secret; nothing changed")


@project_app.command("add")
def project_add(
    name: Annotated[str, typer.Argument(help="Project name: lowercase letters, digits and '-'.")],
    repo: Annotated[str, typer.Option("--repo", help="The app's source: a git URL or a local directory.")],
    domain: Annotated[str | None, typer.Option(help="Domain (default: NAME.<server_domain>).")] = None,
    ref: Annotated[str | None, typer.Option(help="Branch or tag of a git source (default: its default branch).")] = None,
    settings: Annotated[str | None, typer.Option(help="DJANGO_SETTINGS_MODULE (default: the one manage.py sets).")] = None,
    dockerfile: Annotated[str | None, typer.Option(help="Build with this Dockerfile of the source.")] = None,
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
) -> None:
    """Add a Django project: detect how it is built and run, allocate its ports, write its inventory
    entry and generate its secrets. Touches no server; `stagectl deploy --project NAME` does."""
    from stagectl.onboard import add_project

    console = _console()
    try:
        with console.status(f"inspecting {repo}"):
            added = add_project(env, _vault_file(env, vault_password_file), name, repo, domain=domain, ref=ref,
                                settings=settings, dockerfile=dockerfile)
    except StagectlError as exc:
        _fail(exc)
    project, inspection = added.project, added.inspection
    table = Table(title=f"project {project.name}: detected in the source")
    for column in ("setting", "value", "found in"):
        table.add_column(column)
    for what, value, where in inspection.found:
        table.add_row(what, value, where)
    console.print(table)
    for warning in inspection.warnings:
        console.print("[yellow]warning:[/] ", end="", markup=True)
        console.print(warning, markup=False)
    console.print(f"domain {project.domain}; ports {project.ports.model_dump()}; worker {project.worker}, "
                  f"scheduler {project.scheduler}", markup=False)
    console.print(f"written: {environment.INVENTORY} (entry '{project.name}', with its app: mapping) and "
                  f"{environment.VAULT} ({', '.join(added.secrets_added) or 'no new secrets'})", markup=False)
    console.print("DNS: create these A records before the deploy (certificates need them):", markup=False)
    for record, address in added.dns_records:
        console.print(f"  {record}  A  {address}", markup=False)
    console.print(f"next: stagectl deploy --project {project.name} --env {env}", markup=False)


@project_app.command("remove")
def project_remove(
    name: Annotated[str, typer.Argument(help="The project to take off the server.")],
    keep_data: Annotated[bool, typer.Option("--keep-data", help="Keep its data, backups and secrets.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Delete the data without asking.")] = False,
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
) -> None:
    """Final backup, then stop and remove the project's stack and backup timers, drop it from the
    main nginx and Prometheus, and from the inventory. Its data, backups and secrets are deleted
    too unless --keep-data (after a confirmation, or --yes)."""
    from stagectl.onboard import check_removable, remove_project

    console = _console()
    try:
        project = next(p for p in check_removable(env, name).projects if p.name == name)
    except StagectlError as exc:
        _fail(exc)
    if not keep_data and not yes:
        typer.confirm(
            f"Delete {project.name}'s data and backups on the server (database, media, backups) and its "
            "secrets? A final backup is taken first but deleted with the rest", abort=True,
        )
    try:
        result = _run_with_progress(
            console, f"removing {name}",
            lambda progress: remove_project(env, _vault_file(env, vault_password_file), name, keep_data=keep_data,
                                            on_progress=progress),
        )
    except StagectlError as exc:
        _fail(exc)
    _print_run(console, f"project remove {name}", result.removed)
    if result.refreshed is not None:
        _print_run(console, "shared stack without it", result.refreshed)
    for note in result.notes:
        console.print(note, markup=False)
    if result.refreshed is not None:
        kept = "kept (--keep-data)" if keep_data else "deleted"
        console.print(f"{name} removed from {environment.INVENTORY}; data, backups and secrets {kept}; "
                      f"the DNS record for {project.domain} can go", markup=False)
    if not (result.removed.ok and result.refreshed is not None and result.refreshed.ok):
        raise typer.Exit(code=1)


# --- backup: one block, so that other command groups merge beside it ---------------------------

backup_app = typer.Typer(
    help="Backups: take, list, test and restore the projects' database backups.", no_args_is_help=True
)
app.add_typer(backup_app, name="backup")
BackupProject = Annotated[
    str | None, typer.Option("--project", "-p", help="Only this project (default: every project).")
]


def _print_tool_runs(console: Console, report: BackupReport, verb: str) -> None:
    for tool in report.tools:
        mark = "[green]OK[/]" if tool.ok else "[bold red]FAILED[/]"
        console.print(f"{tool.host}: {verb} of {escape(tool.project)} {mark}", markup=True)
        for message in tool.messages():
            console.print(f"  {message}", markup=False)
    for host in report.missing:
        console.print(f"[bold red]{host}:[/] no answer: ", end="", markup=True)
        console.print(report.run.failure_detail(host), markup=False)


def _backup_action(action: Literal["run", "verify"], verb: str, env: Path, project: str | None,
                   vault_password_file: Path | None) -> None:
    from stagectl import backup as backup_mod

    console = _console()
    try:
        report = _run_with_progress(
            console, f"{verb} running",
            lambda progress: backup_mod.run_action(env, _vault_file(env, vault_password_file), action,
                                                   project=project, on_progress=progress),
        )
    except StagectlError as exc:
        _fail(exc)
    _print_tool_runs(console, report, verb)
    failed = sum(1 for t in report.tools if not t.ok) + len(report.missing)
    verdict = "[bold green]OK[/]" if report.ok else f"[bold red]FAILED[/] ({failed} failed)"
    console.print(f"backup {action} {verdict} in {report.seconds:.1f}s ({len(report.tools)} projects)")
    if not report.ok:
        raise typer.Exit(code=1)


@backup_app.command("run")
def backup_run(env: EnvDir = Path("."), project: BackupProject = None, vault_password_file: VaultFile = None) -> None:
    """Take a backup now: database dump, configuration and media, checksummed (what the daily timer does)."""
    _backup_action("run", "backup", env, project, vault_password_file)


@backup_app.command("verify")
def backup_verify(
    env: EnvDir = Path("."), project: BackupProject = None, vault_password_file: VaultFile = None
) -> None:
    """Restore test now: the newest backup restored into a throwaway database and checked (what the
    weekly timer does). The live database is not touched."""
    _backup_action("verify", "restore test", env, project, vault_password_file)


@backup_app.command("list")
def backup_list(env: EnvDir = Path("."), project: BackupProject = None, vault_password_file: VaultFile = None) -> None:
    """The backups on the server, newest first: id (time), size, age and restore-test state."""
    import datetime

    from stagectl import backup as backup_mod
    from stagectl.status import age

    console = _console()
    try:
        report = _run_with_progress(
            console, "listing backups",
            lambda progress: backup_mod.run_action(env, _vault_file(env, vault_password_file), "list",
                                                   project=project, on_progress=progress),
        )
    except StagectlError as exc:
        _fail(exc)
    now = datetime.datetime.now(tz=datetime.UTC)
    table = Table(title="stagectl backup list")
    for column in ("project", "id (UTC time)", "size", "age", "restore test", "where"):
        # The id is what `backup restore --at` takes: never cut.
        table.add_column(column, justify="right" if column == "size" else "left",
                         no_wrap=column == "id (UTC time)", min_width=16 if column == "id (UTC time)" else None)
    several_hosts = len({item.host for item in report.backups}) > 1
    for item in report.backups:
        tested = item.verification
        if item.verified_at is not None:
            tested += f" {age((now - item.verified_at).total_seconds())} ago"
        style = {"verified": "green", "failed": "bold red"}.get(item.verification, "yellow")
        # restic's snapshot list does not give a dump's size cheaply: off-site copies show none.
        size = "-" if item.where == "off-site" else (
            f"{item.size / 1e6:.1f} MB" if item.size >= 100_000 else f"{item.size} B")
        table.add_row(item.project, item.id, size,
                      age((now - item.taken_at).total_seconds()), f"[{style}]{tested}[/]",
                      f"{item.where} {item.host}" if several_hosts else item.where)
    console.print(table)
    for tool in report.tools:
        if not tool.ok:
            console.print(f"[bold red]{tool.host}: list of {escape(tool.project)} failed:[/] ", end="", markup=True)
            console.print("; ".join(tool.errors() or tool.messages()), markup=False)
    for host in report.missing:
        console.print(f"[bold red]{host}:[/] no answer: ", end="", markup=True)
        console.print(report.run.failure_detail(host), markup=False)
    counted = {t.project: sum(1 for b in report.backups if b.project == t.project) for t in report.tools}
    none = sorted(name for name, count in counted.items() if count == 0)
    console.print(f"{len(report.backups)} backups of {len(counted)} projects"
                  + (f"; none yet of: {', '.join(none)} (stagectl backup run)" if none else ""), markup=False)
    if not report.ok:
        raise typer.Exit(code=1)


def _can_ask() -> bool:
    """Whether a confirmation can be asked: a person at a terminal, not a script's empty stdin."""
    return sys.stdin.isatty()


@backup_app.command("restore")
def backup_restore(
    project: Annotated[str, typer.Option("--project", "-p", help="The project whose database is replaced.")],
    at: Annotated[
        str | None, typer.Option("--at", help="The backup's id (its time, see `stagectl backup list`); default the newest.")
    ] = None,
    source: Annotated[
        str, typer.Option("--from", help="local (the server's backups) or remote (the off-site copy).")
    ] = "local",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
) -> None:
    """Put a backup back into the project's LIVE database: the app is stopped, a safety backup
    taken, the backup restored and migrated, the app started and health checked. On any failure
    the database as it was goes back."""
    from stagectl import backup as backup_mod

    console = _console()
    try:
        if source not in ("local", "remote"):
            raise StagectlError(f"--from '{source}' is not a backup source", hint="use --from local or --from remote")
        request = backup_mod.check_restore(env, _vault_file(env, vault_password_file), project, at=at,
                                           source="remote" if source == "remote" else "local")
        if not yes and not _can_ask():
            raise StagectlError(
                f"restoring replaces the live database of {project} and needs a confirmation, but there is "
                "no terminal to ask on",
                hint="pass --yes to restore without asking",
            )
    except StagectlError as exc:
        _fail(exc)
    which = "the newest backup" if request.backup_id == "latest" else f"backup {request.backup_id}"
    if not yes:
        typer.confirm(
            f"Replace the live database of {project} with {which}? The app stops meanwhile; a safety "
            "backup of the current data is taken first", abort=True,
        )
    try:
        report = _run_with_progress(
            console, f"restoring {project}", lambda progress: backup_mod.restore(request, on_progress=progress)
        )
    except StagectlError as exc:
        _fail(exc)
    _print_tool_runs(console, report, "restore")
    if report.ok:
        console.print(f"backup restore of {project} [bold green]OK[/] in {report.seconds:.1f}s: {which} is "
                      "live, migrations applied, app healthy", markup=True)
        return
    console.print(f"backup restore of {project} [bold red]FAILED[/] in {report.seconds:.1f}s: see the "
                  "messages above (the previous database is put back on failure)", markup=True)
    raise typer.Exit(code=1)


# --- certs: the certificates of the server's public names ---------------------------------------
certs_app = typer.Typer(help="Certificates of the server's public names: status and renewal.", no_args_is_help=True)
app.add_typer(certs_app, name="certs")


@certs_app.command("status")
def certs_status(env: EnvDir = Path("."), vault_password_file: VaultFile = None) -> None:
    """Per public name: who issued its certificate, when it expires, days left (read from the
    server). Changes nothing; exit 1 when a name has no certificate or fewer than 20 days left."""
    from stagectl import certs

    console = _console()
    try:
        report = _run_with_progress(
            console, "reading the certificates",
            lambda progress: certs.run_certs_status(env, _vault_file(env, vault_password_file), progress),
        )
    except StagectlError as exc:
        _fail(exc)
    # One plain line per name: names and issuers are never cropped to the terminal's width.
    for cert in report:
        days = cert.days_left
        left = "-" if days is None else f"{days:.0f} days left"
        expires = cert.not_after.strftime("%Y-%m-%d %H:%M UTC") if cert.not_after else "-"
        console.print(
            f"{cert.host}  {cert.name}  {cert.kind}  issuer: {cert.issuer or '-'}  expires: {expires}  "
            f"({left})  serial: {cert.serial or '-'}" + (f"  error: {cert.error}" if cert.error else ""),
            style=None if cert.ok else "bold red", markup=False,
        )
    for error in report.errors:
        console.print(f"[bold red]error:[/] {escape(error)}", markup=True)
    verdict = "[bold green]all well[/]" if report.ok else "[bold red]needs attention[/]"
    console.print(f"certificates {verdict} ({len(report)} names, {report.seconds:.1f}s)")
    if not report.ok:
        raise typer.Exit(code=1)


@certs_app.command("renew")
def certs_renew(
    env: EnvDir = Path("."),
    vault_password_file: VaultFile = None,
    name: Annotated[list[str] | None, typer.Option("--name", help="Renew only this name (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Renew even when not due (certbot --force-renewal).")] = False,
) -> None:
    """certbot renews the certificates that are due (all with --force); its deploy hook tests the
    main nginx's configuration and reloads it. Exit 1 when a renewal failed."""
    from stagectl import certs

    console = _console()
    try:
        report = _run_with_progress(
            console, "renewing certificates",
            lambda progress: certs.run_certs_renew(
                env, _vault_file(env, vault_password_file), name or [], force=force, on_progress=progress
            ),
        )
    except StagectlError as exc:
        _fail(exc)
    words = {"renewed": "renewed, nginx reloaded", "not-due": "not due yet (--force renews anyway)",
             "failed": "FAILED"}
    for outcome in report:
        console.print(f"{outcome.host}: {outcome.name}: {words[outcome.result]}", markup=False)
        if outcome.detail:
            console.print(f"  certbot: {outcome.detail}", markup=False)
    for error in report.errors:
        console.print(f"[bold red]error:[/] {escape(error)}", markup=True)
    if not report.ok:
        console.print("[bold red]renewal failed[/]: the current certificates keep serving", markup=True)
        raise typer.Exit(code=1)
    console.print(f"renewal done ({report.seconds:.1f}s)", markup=False)


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def main() -> None:
    # Ansible and ansible-runner read these; a user's stray setting must not leak secrets to logs.
    os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
    # Both signals unwind the stack (click would turn a KeyboardInterrupt into exit 1), so every
    # `finally` removes its temporary files; a running playbook is stopped by the runner itself.
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        app()
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"interrupted ({signal.Signals(signum).name}): stopped",
              file=sys.stderr)
        raise SystemExit(128 + signum) from None
