"""Deploy figures on a fresh sandbox: `sandbox up` with and without a cached server image, cold
deploy (stand-in images cached), a no-op redeploy of the whole server and of one project with
their task counts and slowest tasks, a deploy that changes one file (which services restarted),
then the same server with 10 projects (the others added with `project add`, the demo app) and its
no-op redeploy; each beside one `ansible -m ping` of the same host (the floor: one SSH connection
and one module run).

    .venv/bin/python benchmarks/deploy_benchmark.py [--keep-server-image] [--projects 10]

Needs a Docker engine (scripts/testbed-setup.sh docker). Prints figures; asserts nothing.
Talks only to the sandbox it starts (127.0.0.1 and the local Docker bridge).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from stagectl import collection
from stagectl.deploy import DeployReport, bootstrap, deploy
from stagectl.environment import INVENTORY
from stagectl.onboard import add_project
from stagectl.sandbox import archive, server
from stagectl.sandbox.environment import bootstrap_target, write_sandbox_environment
from stagectl.sandbox.images.builder import SANDBOX_SERVER, ImageBuilder

DEMO_APP = Path(__file__).resolve().parents[1] / "examples" / "demo-app"


def timed(label: str, work):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = work()
    print(f"{label}: {time.monotonic() - started:.1f}s", flush=True)
    return result


def report(label: str, result: DeployReport) -> None:
    run = result.run
    validation = ("kept from the last one (environment unchanged)" if result.plan.cached
                  else f"{result.plan.render_seconds + result.plan.check_seconds:.1f}s")
    print(f"  {label}: validation {validation}, "
          f"ansible {run.seconds:.1f}s, {run.tasks} tasks, "
          f"changed {sum(s.changed for s in run.hosts.values())}, ok={run.ok}")
    for timing in run.slowest(5):
        print(f"    {timing.seconds:6.2f}s  {timing.role or '-'}: {timing.task}")


def ping(root: Path, password_file: Path) -> None:
    """`ansible -m ping` of the inventory's hosts, with the settings of a stagectl run."""
    env = {**os.environ, **collection.ansible_env(),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        ["ansible", "staging", "-i", str(root / INVENTORY), "--vault-password-file", str(password_file),
         "-m", "ansible.builtin.ping", "--become"],
        cwd=root, env=env, check=True, capture_output=True,
    )


def started_at(server_name: str) -> dict[str, str]:
    """Each container on the server and when it last started."""
    out = subprocess.run(
        ["docker", "exec", server_name, "sh", "-c",
         "docker inspect --format '{{.Name}} {{.State.StartedAt}}' $(docker ps -q)"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    return dict(line.lstrip("/").split(" ", 1) for line in out.splitlines() if line)


def one_file_changed(server_name: str, root: Path, password_file: Path) -> None:
    """A hand edit of Alertmanager's configuration: the deploy writes the one file back, and only
    Alertmanager applies it (a reload: no container restarts)."""
    subprocess.run(["docker", "exec", server_name, "sh", "-c",
                    "echo '# edited by hand' >> /opt/shared/alertmanager/config/alertmanager.yml"],
                   check=True, timeout=60)
    before = started_at(server_name)
    result = timed("deploy that changes one file (validation included)", lambda: deploy(root, password_file))
    report("one file changed", result)
    restarted = sorted(name for name, at in started_at(server_name).items() if before.get(name) != at)
    print(f"    changed tasks: {', '.join(result.run.changed_tasks()) or 'none'}")
    print(f"    containers restarted: {', '.join(restarted) or 'none'}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-server-image", action="store_true",
                        help="skip the uncached `sandbox up` (other sandboxes are using the image)")
    parser.add_argument("--projects", type=int, default=10,
                        help="projects of the last no-op redeploy (the example's 2 and the demo app added; 2: skip)")
    args = parser.parse_args()
    images = timed("stand-in images and archive (cached when built before)", archive.ensure_archive)
    builder = ImageBuilder()
    server_image = builder.ref(SANDBOX_SERVER.name)
    name = f"stagectl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="stagectl-bench-") as tmp:
        state = Path(tmp)
        try:
            if not args.keep_server_image:
                # Without a cached server image: remove it so `up` builds it (the Debian base stays).
                subprocess.run(["docker", "image", "rm", "-f", server_image], capture_output=True, check=False)
                timed("sandbox up, server image not cached",
                      lambda: server.up(name, 0, state_dir=state / "s1", http_port=0, https_port=0,
                                        archive_dir=images.path.parent))
                server.down(name, remove_data=True)
            info = timed("sandbox up, server image cached",
                         lambda: server.up(name, 0, state_dir=state / "s2", http_port=0, https_port=0,
                                           archive_dir=images.path.parent))
            root, password_file = state / "environment", state / "vault-pass"
            write_sandbox_environment(root, info, password_file, DEMO_APP, preload_archives=[images.server_path])
            target = bootstrap_target(info)
            result = timed("bootstrap", lambda: bootstrap(root, password_file, target.login,
                                                          connect_key=target.connect_key))
            assert result.ok, result.failures
            cold = timed("cold deploy (validation included)", lambda: deploy(root, password_file))
            report("cold deploy", cold)
            again = timed("no-op redeploy (validation included)", lambda: deploy(root, password_file))
            report("no-op redeploy", again)
            project = timed("no-op deploy --project beryl3 (validation included)",
                            lambda: deploy(root, password_file, project="beryl3"))
            report("no-op deploy --project beryl3", project)
            timed("ansible -m ping --become, same host and settings", lambda: ping(root, password_file))
            one_file_changed(info.name, root, password_file)
            if args.projects > 2:
                for number in range(3, args.projects + 1):
                    add_project(root, password_file, f"bench{number}", str(DEMO_APP))
                timed(f"deploy adding {args.projects - 2} projects (validation included)",
                      lambda: deploy(root, password_file))
                many = timed(f"no-op redeploy, {args.projects} projects (validation included)",
                             lambda: deploy(root, password_file))
                report(f"no-op redeploy, {args.projects} projects", many)
                timed("ansible -m ping --become, same host and settings", lambda: ping(root, password_file))
        finally:
            server.down(name, remove_data=True)


if __name__ == "__main__":
    main()
