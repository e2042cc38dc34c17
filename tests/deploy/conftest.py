"""The end-to-end tier: one sandbox server per test session, bootstrapped and deployed with the
real `stagectl bootstrap` and `stagectl deploy` code paths, shared by every test in tests/deploy.

Tests reach the sandbox only through ports published on 127.0.0.1, `docker exec` into it, and
its address on the local Docker bridge (a network this test run's Docker engine made).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stagectl.deploy import bootstrap, deploy
from stagectl.runner import RunResult
from stagectl.sandbox import acme, alert_sink, archive, mail_sink, server
from stagectl.sandbox.environment import bootstrap_target, write_sandbox_environment
from stagectl.sandbox.images.builder import docker_available
from stagectl.sandbox.server import SandboxInfo
from tests.conftest import missing_tool

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here needs the deployed sandbox: marked `sandbox` whether its file says so or not,
    before `-m "not sandbox"` (the fast tier) selects, so that a new file cannot start a sandbox there."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.sandbox)
    # test_sandbox_data recreates the session's sandbox (down, up, bootstrap, deploy): last.
    items.sort(key=lambda item: Path(str(item.path)).name == "test_sandbox_data.py")
DEMO_APP = REPO / "examples" / "demo-app"
#: What runc says when it could not start a process of `docker exec` (not the process failing).
_RUNC_START_FAILED = "unable to start container process"


@dataclass
class Deployed:
    info: SandboxInfo
    root: Path
    vault_password_file: Path
    first_deploy: RunResult
    #: The sandbox's ACME server, which issued the certificates of the first deploy.
    acme: acme.AcmeServer
    timings: dict[str, float] = field(default_factory=dict)

    def sh(self, script: str, *, check: bool = True, timeout: float = 120, stdin: str | None = None) -> str:
        """Run a shell script on the server as root (through `docker exec`, not SSH, so that the
        tests do not depend on the firewall and SSH settings they are checking).

        A script is run once more when runc could not start a process of it (`docker exec` on a
        loaded machine: "read init-p: connection reset by peer"): the failed process never ran,
        and the scripts the tests run are probes or steps that may be repeated."""
        for _attempt in range(2):
            proc = subprocess.run(
                ["docker", "exec", "-i", self.info.name, "bash", "-euo", "pipefail", "-c", script],
                capture_output=True, text=True, timeout=timeout, check=False, input=stdin,
            )
            if proc.returncode == 0 or _RUNC_START_FAILED not in proc.stderr:
                break
        if check and proc.returncode != 0:
            raise AssertionError(f"on the sandbox: {script}\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def prometheus(self, path: str, **params: str) -> Any:
        """GET an API path of Prometheus on the server as admin; the password is read there, from
        the deployed secret file, never put on a command line."""
        url = f"http://127.0.0.1:9090{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        raw = self.sh(
            "curl -sS --netrc-file <(printf 'machine 127.0.0.1 login admin password %s' "
            "\"$(cat /opt/shared/prometheus/config/secrets/prometheus_password)\") "
            f"{shlex.quote(url)}"
        )
        return json.loads(raw)

    def notifications(self) -> list[dict[str, Any]]:
        """What the sandbox's webhook receiver got so far, oldest first."""
        return alert_sink.received(self.info.name)

    def redeploy(self, *, check: bool = False, project: str | None = None) -> RunResult:
        return deploy(self.root, self.vault_password_file, check=check, project=project).run


def _failures(result: RunResult) -> str:
    return "\n".join(f"{f.host}: {f.task}: {f.message}" for f in result.failures) + "\n".join(result.errors)


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    if not docker_available():
        missing_tool("needs a Docker engine: scripts/testbed-setup.sh docker starts one")
    name = f"stagectl-e2e-{uuid.uuid4().hex[:8]}"
    state = tmp_path_factory.mktemp("sandbox-state")
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        images = archive.ensure_archive()
        timings["stand-in images and archive"] = time.monotonic() - started

        started = time.monotonic()
        info = server.up(name, 0, state_dir=state, http_port=0, https_port=0, archive_dir=images.path.parent)
        timings["sandbox up"] = time.monotonic() - started

        started = time.monotonic()
        acme_server = acme.up(name)
        timings["ACME server up"] = time.monotonic() - started

        root, password_file = state / "environment", state / "vault-pass"
        written = write_sandbox_environment(
            root, info, password_file, DEMO_APP, preload_archives=[images.server_path], acme=acme_server
        )
        target = bootstrap_target(info)

        started = time.monotonic()
        result = bootstrap(root, password_file, target.login, connect_key=target.connect_key)
        timings["bootstrap"] = time.monotonic() - started
        assert result.ok, f"bootstrap failed:\n{_failures(result)}"

        started = time.monotonic()
        first = deploy(root, password_file).run
        timings["cold deploy"] = time.monotonic() - started
        assert first.ok, f"deploy failed:\n{_failures(first)}"
        alert_sink.start(info.name, written.python_image)
        mail_sink.start(info.name, written.python_image)

        yield Deployed(info=info, root=root, vault_password_file=password_file, first_deploy=first,
                       acme=acme_server, timings=timings)
    finally:
        print("\nend-to-end timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
        try:
            acme.down(name)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own failure
            print(f"could not remove the ACME server of sandbox {name}: {exc}")
        try:
            server.down(name, remove_data=True)
        except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own failure
            print(f"could not remove sandbox {name}: {exc}")
