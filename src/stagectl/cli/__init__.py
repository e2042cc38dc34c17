"""The `stagectl` command line: one module per noun, each command thin (it parses options, calls
the library and presents the result). Typed errors from below become one clear message and exit
code 2 in one place (`common.ErrorHandlingGroup`); nothing prints a traceback for a user's mistake.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

# Modules, not their functions: a function named like its module (plan.plan) imported here would
# hide the module from `stagectl.cli.plan`.
from stagectl.cli import (
    alert,
    backup,
    certs,
    deploy,
    dns,
    doctor,
    plan,
    project,
    sandbox,
    secrets,
    status,
    upgrade,
)
from stagectl.cli.common import ErrorHandlingGroup
from stagectl.errors import Interrupted

app = typer.Typer(
    cls=ErrorHandlingGroup,
    help="One declarative environment to a running, monitored, backed-up Docker staging server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (plan.init, plan.plan, deploy.bootstrap, deploy.deploy, doctor.doctor, status.status):
    app.command()(command)
app.add_typer(secrets.app, name="secrets")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(alert.app, name="alert")
app.command()(dns.dns)
app.add_typer(project.app, name="project")
app.add_typer(backup.app, name="backup")
app.add_typer(certs.app, name="certs")
app.command()(upgrade.upgrade)


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
        print(f"interrupted ({signal.Signals(signum).name}): stopped", file=sys.stderr)
        raise SystemExit(128 + signum) from None
