"""Environments for the render tier, built and rendered once per session, the way `plan` does.

An environment is what `stagectl init` writes (`stagectl.scaffold.init_environment`, its vault
password file in a temporary directory outside it), optionally edited, its vault filled for added
projects as `stagectl secrets generate` does and its allocated ports written back as `stagectl
plan` does. It is rendered with `stagectl.render.render_environment`: playbooks/render.yml, every
role's own tasks/render.yml and the `render_files` action, so what the tests check is what `plan`
validates and `deploy` writes.

Rendering costs seconds of ansible-playbook per environment, so each one is rendered once per
session, and the renders the collected tests need are started together, in background threads
(each an ansible-playbook process), as soon as the first test of this directory runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from stagectl import collection
from stagectl.derived import derive
from stagectl.environment import (
    ALL_VARS,
    INVENTORY,
    STAGING_VARS,
    VAULT,
    load_environment,
    record_allocations,
)
from stagectl.render import MANIFEST_DIR, RenderedFile, read_manifest, render_environment
from stagectl.scaffold import init_environment
from stagectl.vault import decrypt, fill_missing, read_password_file, write_vault

HOST = "staging-server"  # the example's one host
CONTRACT_KINDS = frozenset({
    "compose", "prometheus_config", "prometheus_rules", "prometheus_web", "alertmanager", "blackbox",
    "loki", "alloy", "grafana_ini", "grafana_provisioning", "nginx_main", "nginx_project", "shell",
    "systemd", "dockerfile", "env", "yaml", "json", "text",
})  # docs/templates-contract.md

Edit = Callable[[dict[str, Any]], None]


# --- building an environment ---------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltEnv:
    root: Path
    vault_password_file: Path
    stagectl: dict[str, Any]  # the derived `stagectl` variable, as the vars plugin gives it
    vault: dict[str, Any]  # the decrypted vault: every vault_* variable


def _edit_yaml(path: Path, edit: Edit) -> None:
    data = yaml.safe_load(path.read_text()) or {}
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_environment(
    root: Path,
    vault_password_file: Path,
    *,
    inventory: Edit | None = None,
    all_vars: Edit | None = None,
    staging_vars: Edit | None = None,
    vault: Edit | None = None,
) -> BuiltEnv:
    """`stagectl init`, optional edits of its files, secrets for added projects (and an optional
    edit of the decrypted vault), ports recorded."""
    init_environment(root, vault_password_file)
    for rel, edit in ((INVENTORY, inventory), (ALL_VARS, all_vars), (STAGING_VARS, staging_vars)):
        if edit is not None:
            _edit_yaml(root / rel, edit)
    password = read_password_file(vault_password_file)
    secrets = decrypt(root / VAULT, password)
    names = [p["name"] for p in yaml.safe_load((root / INVENTORY).read_text())["staging"]["vars"]["projects"]]
    if fill_missing(secrets, names) or vault is not None:
        if vault is not None:
            vault(secrets)
        write_vault(root / VAULT, secrets, password)
    loaded = load_environment(root, vault_password_file=vault_password_file)
    record_allocations(root, loaded.allocated)
    return BuiltEnv(root, vault_password_file, derive(loaded.env).model_dump(), secrets)


# --- a rendered environment --------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedEnv:
    """One environment rendered into `out/<host>/<path on the server>`, with plan's records."""

    env: BuiltEnv
    out: Path
    host: str = HOST
    entries: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @classmethod
    def read(cls, env: BuiltEnv, out: Path, host: str = HOST) -> RenderedEnv:
        """The manifest records `render_files` wrote (.manifest/<host>-<role>[-<project>].json),
        each entry with its `role`, `host` and `project` (None for a role's global files)."""
        entries: list[dict[str, Any]] = []
        for fragment in sorted((out / MANIFEST_DIR).glob("*.json")):
            data = json.loads(fragment.read_text())
            if data["host"] != host:
                continue
            role, _, project = fragment.stem.removeprefix(f"{host}-").partition("-")
            assert role == data["role"], fragment
            for entry in data["files"]:
                entries.append({**entry, "role": role, "host": host, "project": project or None})
        return cls(env, out, host, tuple(entries))

    # The rendered server.
    @property
    def root(self) -> Path:
        return self.out / self.host

    @property
    def stagectl(self) -> dict[str, Any]:
        return self.env.stagectl

    @property
    def vault(self) -> dict[str, Any]:
        return self.env.vault

    def path(self, dest: str) -> Path:
        return self.root / dest.lstrip("/")

    def text(self, dest: str) -> str:
        return self.path(dest).read_text()

    def yaml(self, dest: str) -> Any:
        return yaml.safe_load(self.text(dest))

    # The shared stack, by path relative to `stagectl.paths.shared`.
    def shared(self, rel: str) -> Path:
        return self.path(f"{self.stagectl['paths']['shared']}/{rel}")

    def shared_text(self, rel: str) -> str:
        return self.shared(rel).read_text()

    def shared_yaml(self, rel: str) -> Any:
        return yaml.safe_load(self.shared_text(rel))

    # What was rendered.
    def manifest(self, *roles: str) -> list[dict[str, Any]]:
        """Manifest entries as evaluated for this host (of the given roles, or all)."""
        return [e for e in self.entries if not roles or e["role"] in roles]

    def rendered(self, *roles: str) -> list[RenderedFile]:
        """What `plan` hands its validators (`stagectl.render.read_manifest`)."""
        return [f for f in read_manifest(self.out) if f.host == self.host and (not roles or f.role in roles)]

    def files(self, *roles: str) -> list[Path]:
        return sorted(self.path(e["dest"]) for e in self.manifest(*roles))

    def tree(self) -> list[Path]:
        """Every file under the rendered server root, listed or not."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    # Projects.
    def project(self, name: str) -> dict[str, Any]:
        return next(p for p in self.stagectl["projects"] if p["name"] == name)

    def compose(self, name: str) -> dict[str, Any]:
        return self.yaml(f"{self.project(name)['dirs']['root']}/docker-compose.yml")

    def secrets(self) -> dict[str, str]:
        """Every secret of the vault: `vault_*` strings and `<project>.<key>`."""
        found = {k: v for k, v in self.vault.items() if k.startswith("vault_") and isinstance(v, str)}
        for project, values in self.vault["vault_projects"].items():
            found.update({f"{project}.{key}": value for key, value in values.items() if key != "app_secrets"})
            found.update({f"{project}.app_secrets.{key}": value
                          for key, value in values.get("app_secrets", {}).items()})
        return found


def render(env: BuiltEnv, out: Path) -> RenderedEnv:
    """Render with the real path, as `stagectl plan` does."""
    render_environment(env.root, out, env.vault_password_file)
    return RenderedEnv.read(env, out)


# --- the environments --------------------------------------------------------------------------


def _variant_inventory(data: dict[str, Any]) -> None:
    projects = data["staging"]["vars"]["projects"]
    for project in projects:
        if project["name"] == "beryl3":
            # The worker runs stagectl's default command, the scheduler the app's own.
            project.update(worker=True, scheduler=True,
                           app={"processes": {"scheduler": "celery -A beryl3 beat --loglevel info"}})
        if project["name"] == "project2":
            # A pip project described by hand: its own URLs and roots, Procfile processes with shell
            # syntax, packages, plain variables, a secret, metrics elsewhere than /metrics.
            project["app"] = {
                "builder": "pip", "requirements": "requirements/prod.txt", "python": "3.12",
                "settings": "p2.settings.staging", "static_root": "/srv/app/static",
                "media_root": "/srv/app/uploads", "static_url": "/assets/", "media_url": "/uploads/",
                "health_path": "/up", "metrics_path": "/prom",
                "processes": {
                    "web": "gunicorn p2.wsgi --bind 0.0.0.0:8000 --workers $GUNICORN_WORKERS",
                    "release": "python manage.py migrate --noinput && python manage.py createcachetable",
                },
                "apt_packages": ["libmagic1"], "build_packages": ["libmagic-dev"], "env": {"FEATURE_X": "on", "DEBUG": "True"},
                "secrets": ["STRIPE_KEY"],
            }
    # A third project with a '-' in its name and its ports left out (allocated, then recorded),
    # built with its own Dockerfile.
    projects.append({
        "name": "my-app", "domain": "my-app.staging.mdubiel.org", "repo": "https://example.invalid/my-app.git",
        "app": {"builder": "dockerfile", "dockerfile": "docker/Dockerfile", "ready_path": "/ready",
                "processes": {"web": "uwsgi --ini uwsgi.ini"}},
    })


def _variant_vault(data: dict[str, Any]) -> None:
    data["vault_alerting_smtp_password"] = "relay-password-of-the-variant"
    data["vault_projects"]["project2"]["app_secrets"] = {"STRIPE_KEY": "sk_test_$value#1"}
    data["vault_backups_remote"] = {
        "password": "restic-Passw0rd-of-the-variant",
        "env": {"RESTIC_EXAMPLE_TOKEN": "token-of-the-variant-42"},
        "ssh_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-of-the-variant\n-----END OPENSSH PRIVATE KEY-----\n",
        "ssh_known_hosts": "[backup.example.invalid]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvariant",
    }


def _variant_all(data: dict[str, Any]) -> None:
    data["shared_services"]["prometheus"]["image"] = "registry.example.invalid/prometheus:v3.5.0-custom"
    data["shared_services"]["prometheus"]["retention"] = "45d"
    data["shared_services"]["loki"]["retention"] = "7d"
    data.setdefault("docker", {}).update(log_max_size="20m", log_max_file=3)
    # An off-site copy over sftp, on a port of its own.
    data["backups"]["remote"] = {"repository": "sftp://restic@backup.example.invalid:2222//srv/restic/staging"}
    data["backups"]["remote_retention_days"] = 120


def _variant_staging(data: dict[str, Any]) -> None:
    data["alerting"] = {
        "email_to": "ops@example.invalid",
        # A relay on the server itself that wants a login over STARTTLS, with a private CA.
        "smarthost": "localhost:587",
        "smtp_username": "alerts@example.invalid",
        "smtp_ca_file": "/etc/ssl/relay-ca.pem",
        "webhook_urls": ["https://hooks.example.invalid/a", "https://hooks.example.invalid/b?x=1&y=2"],
    }
    data["certificates"] = {"provider": "selfsigned"}


def _no_projects(data: dict[str, Any]) -> None:
    data["staging"]["vars"]["projects"] = []


def _wildcard_staging(data: dict[str, Any]) -> None:
    data["certificates"]["wildcard"] = {"dns_plugin": "rfc2136", "propagation_seconds": 30}


def _wildcard_vault(data: dict[str, Any]) -> None:
    data["vault_certificates_dns_credentials"] = {
        "dns_rfc2136_server": "192.0.2.53", "dns_rfc2136_name": "stagectl", "dns_rfc2136_secret": "c2VjcmV0LW9mLXRoZS12YXJpYW50",
        "dns_rfc2136_algorithm": "HMAC-SHA256",
    }


ENVIRONMENTS: dict[str, dict[str, Edit]] = {
    # The example: beryl3 and project2.
    "example": {},
    # Every optional path at once: worker and scheduler (beryl3), a pip app described in full
    # (project2), a third project with allocated ports and its own Dockerfile, a custom image, retentions, log rotation, e-mail and webhook alerting, self-signed
    # certificates.
    "variant": {"inventory": _variant_inventory, "all_vars": _variant_all, "staging_vars": _variant_staging,
                "vault": _variant_vault},
    # No project, and the monitoring names served by one wildcard certificate (DNS-01).
    "no_projects": {"inventory": _no_projects, "staging_vars": _wildcard_staging, "vault": _wildcard_vault},
}
RENDERS = {  # fixture -> the environment it renders
    "example": "example",
    # The example again, in another ansible-playbook process running beside the first one: a
    # render that is not byte-for-byte deterministic shows up as a difference between the two.
    "example_again": "example",
    "variant": "variant",
    "no_projects": "no_projects",
}
# Fixtures that reach renders through request.getfixturevalue, invisible to pytest's closure.
INDIRECT = {"rendered": ("example", "variant", "no_projects")}


# --- rendering them once, side by side -------------------------------------------------------


class RenderPool:
    """Builds the environments and runs the session's renders in background threads."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="render")
        self._jobs: dict[str, Future[Any]] = {}
        self._builders: dict[str, Callable[[], Any]] = {}
        self._lock = threading.Lock()
        self._envs: dict[str, BuiltEnv] = {}
        self._env_locks = {name: threading.Lock() for name in ENVIRONMENTS}
        self.seconds: dict[str, float] = {}
        for fixture, env_name in RENDERS.items():
            self.register(fixture, lambda f=fixture, e=env_name: render(self.env(e), self.base / "out" / f))

    def register(self, name: str, build: Callable[[], Any]) -> None:
        self._builders[name] = build

    def env(self, name: str) -> BuiltEnv:
        """The environment, built once (thread-safe)."""
        with self._env_locks[name]:
            if name not in self._envs:
                self._envs[name] = make_environment(
                    self.base / "env" / name, self.base / "keys" / f"{name}.vault-pass", **ENVIRONMENTS[name]
                )
            return self._envs[name]

    def start(self, *names: str) -> None:
        with self._lock:
            for name in names:
                if name not in self._jobs:
                    self._jobs[name] = self._executor.submit(self._timed, name)

    def _timed(self, name: str) -> Any:
        started = time.monotonic()
        try:
            return self._builders[name]()
        finally:
            self.seconds[name] = time.monotonic() - started

    def result(self, name: str) -> Any:
        self.start(name)
        return self._jobs[name].result()

    def wait(self) -> None:
        """Until every started job has finished (failures stay with their fixture)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.exception()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


_pool: RenderPool | None = None


@pytest.fixture(scope="session")
def render_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RenderPool]:
    global _pool
    pool = _pool = RenderPool(tmp_path_factory.mktemp("render"))
    pool.register("deploy_equivalent", lambda: render_both_ways(pool.env("example"), pool.base / "equivalence"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session", autouse=True)
def _start_renders(request: pytest.FixtureRequest, render_pool: RenderPool) -> None:
    """Start, all at once, the renders the collected tests of this directory will ask for."""
    here = Path(__file__).parent
    needed: set[str] = set()
    for item in request.session.items:
        if here not in Path(str(item.path)).parents:
            continue
        names = set(getattr(item, "fixturenames", ()))
        for name in names:
            needed.update(INDIRECT.get(name, ()))
        needed |= names & (set(RENDERS) | {"deploy_equivalent"})
    render_pool.start(*sorted(needed))


# Tests that use none of the session's renders and spend their time waiting (a Compose stack
# becoming healthy) or in processes of their own (a whole plan): they run first, while the
# session's renders proceed in the background.
RUN_FIRST = (
    "test_the_stack_runs_healthy_serves_and_is_backed_up",
    "test_init_then_plan_passes_every_validator",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    slots = [i for i, item in enumerate(items) if here in Path(str(item.path)).parents]
    mine = [items[i] for i in slots]
    rank = {name: position for position, name in enumerate(RUN_FIRST)}
    ordered = sorted(mine, key=lambda item: rank.get(getattr(item, "originalname", item.name), len(rank)))
    for slot, item in zip(slots, ordered, strict=True):
        items[slot] = item


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _pool is not None and _pool.seconds:
        runs = sum(1 + TEMPLATE_PROCESSES if name == "deploy_equivalent" else 1 for name in _pool.seconds)
        timings = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in sorted(_pool.seconds.items()))
        terminalreporter.write_line(f"render tier: {runs} background ansible-playbook renders ({timings})")


@pytest.fixture(scope="session")
def example(render_pool: RenderPool) -> RenderedEnv:
    return render_pool.result("example")


@pytest.fixture(scope="session")
def example_again(render_pool: RenderPool) -> RenderedEnv:
    return render_pool.result("example_again")


@pytest.fixture(scope="session")
def variant(render_pool: RenderPool) -> RenderedEnv:
    return render_pool.result("variant")


@pytest.fixture(scope="session")
def no_projects(render_pool: RenderPool) -> RenderedEnv:
    return render_pool.result("no_projects")


# --- the deploy's way: ansible.builtin.template, for the equivalence test -------------------------

RENDER_TASK_FILES = ("render.yml", "render_common.yml")
TEMPLATE_PROCESSES = 2


@dataclass(frozen=True)
class BothWays:
    """The example rendered from one snapshot of the collection, twice: with the roles' own
    render tasks (`render_files`, as plan does) and with those tasks turned into
    `ansible.builtin.template` tasks over the same manifests (as the deploy writes)."""

    by_render_files: RenderedEnv
    by_template: Path  # the server root (<out>/<host>) of the template module's render
    rewritten: tuple[str, ...]  # the task files turned into template tasks (role/tasks/file)


def collection_snapshot(target: Path) -> Path:
    """A copy of the shipped collection; returns the directory to use as collections path."""
    shutil.copytree(
        collection.collections_path() / "ansible_collections",
        target / "ansible_collections",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return target


def render_files_task(tasks: Any) -> dict[str, Any] | None:
    """The `render_files` task of a task file, if the file is the one-task contract."""
    if not isinstance(tasks, list):
        return None
    calls = [t for t in tasks if isinstance(t, dict) and "stagectl.staging.render_files" in t]
    return calls[0] if len(calls) == 1 and len(tasks) == 1 else None


def _inner(expression: str) -> str:
    match = re.fullmatch(r"\{\{\s*(.+?)\s*\}\}", expression.strip())
    assert match, f"not a single Jinja expression: {expression!r}"
    return match.group(1)


def manifest_expression(args: dict[str, Any]) -> str:
    """The Jinja expression of the manifest a `render_files` call renders: its `files`, or for
    a call over several projects its `files_var` (evaluated per project)."""
    return str(args["files_var"]) if "projects" in args else _inner(args["files"])


PER_PROJECT_TASKS = "equivalence_one_project.yml"


def template_tasks(call: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The same manifest written by ansible.builtin.template (item = the manifest entry, as a
    deploy's `loop: "{{ <role>_files }}"` gives it), into the same place: the task file's new
    content, and for a call over several projects a second task file included once per project
    (with `project_name` set, as a deploy's project loop sets it)."""
    args = call["stagectl.staging.render_files"]
    files, dest = manifest_expression(args), args["dest"]
    writes = [
        {
            # One process for every directory (a `file` loop would run a module per directory).
            "name": "Create the directories (equivalence test)",
            "ansible.builtin.command": {
                "argv": "{{ ['mkdir', '-p'] + ([equivalence_root] | product((" + files
                        + ") | map(attribute='dest') | map('dirname') | unique) | map('join') | list) }}",
            },
            "vars": {"equivalence_root": dest},
            "changed_when": True,
            "delegate_to": "localhost",
        },
        {
            "name": "Write the manifest with ansible.builtin.template (equivalence test)",
            "ansible.builtin.template": {"src": "{{ item.src }}", "dest": dest + "{{ item.dest }}", "mode": "{{ item.mode }}"},
            # This process's share of the manifest (see render_both_ways).
            "loop": "{{ (" + files + ")[equivalence_slice | int::equivalence_slices | int] }}",
            "loop_control": {"label": "{{ item.dest }}"},
            "delegate_to": "localhost",
        },
    ]
    if "projects" not in args:
        return {"": writes}
    return {
        "": [{
            "name": "Write each project's manifest (equivalence test)",
            "ansible.builtin.include_tasks": PER_PROJECT_TASKS,
            "loop": args["projects"],
            "loop_control": {"loop_var": "project_name"},
        }],
        PER_PROJECT_TASKS: writes,
    }


def _ansible_playbook(collections: Path, env: BuiltEnv, out: Path, **extra: Any) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        **collection.ansible_env(),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_PIPELINING": "1",  # fewer processes per module run; the bytes do not depend on it
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    playbook = collections / "ansible_collections" / "stagectl" / "staging" / "playbooks" / "render.yml"
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(env.root / INVENTORY),
         "--vault-password-file", str(env.vault_password_file), str(playbook),
         "-e", json.dumps({"stagectl_render_dir": str(out), **extra})],
        cwd=env.root, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def render_both_ways(env: BuiltEnv, base: Path) -> BothWays:
    # One snapshot for both, so an edit of a template while the tests run cannot look like a
    # difference between the two ways.
    plan_way = collection_snapshot(base / "plan-way")
    deploy_way = base / "deploy-way"
    shutil.copytree(plan_way, deploy_way)
    rewritten = []
    for task_file in sorted((deploy_way / "ansible_collections/stagectl/staging/roles").glob("*/tasks/*.yml")):
        if task_file.name not in RENDER_TASK_FILES:
            continue
        call = render_files_task(yaml.safe_load(task_file.read_text()))
        if call is not None:
            for name, tasks in template_tasks(call).items():
                (task_file.with_name(name) if name else task_file).write_text(yaml.safe_dump(tasks, sort_keys=False))
            rewritten.append(f"{task_file.parent.parent.name}/tasks/{task_file.name}")
    outs = {"plan": base / "out-render_files", "deploy": base / "out-template"}
    # The template module runs two modules per file (stat, copy): its share of the manifest is
    # split among a few processes writing into the same directory, which runs them side by side.
    processes = {"render_files": _ansible_playbook(plan_way, env, outs["plan"])}
    for index in range(TEMPLATE_PROCESSES):
        processes[f"template {index + 1}/{TEMPLATE_PROCESSES}"] = _ansible_playbook(
            deploy_way, env, outs["deploy"], equivalence_slice=index, equivalence_slices=TEMPLATE_PROCESSES
        )
    for way, process in processes.items():
        output, _ = process.communicate(timeout=900)
        assert process.returncode == 0, f"the {way} way failed (exit {process.returncode}):\n{output[-6000:]}"
    return BothWays(RenderedEnv.read(env, outs["plan"]), outs["deploy"] / HOST, tuple(rewritten))


@pytest.fixture(scope="session")
def deploy_equivalent(render_pool: RenderPool) -> BothWays:
    return render_pool.result("deploy_equivalent")
