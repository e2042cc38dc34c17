"""Running the upstream validators over rendered files and over the collection itself.

Each rendered file is checked according to its manifest `kind`; the collection is checked with
`ansible-playbook --syntax-check` and ansible-lint's production profile. A validator that is not
installed is a failed check naming the package that provides it: a plan that skipped promtool is
not a plan that passed.

Speed without changing a result: the validators run in parallel (as many as there are CPUs; the
collection's checks beside them, started before the render), yamllint reads many files per run, and a check that passed is
not run again for the same tool version and the same bytes (`stagectl.validators.cache`). On a
cold cache every check runs; a failure is never taken from the cache.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stagectl import __version__, collection, process
from stagectl.environment import INVENTORY
from stagectl.render import RenderedFile
from stagectl.validators import base
from stagectl.validators.cache import (
    Cached,
    ResultCache,
    digest,
    files_digest,
    python_tool_version,
    source_digest,
    tool_version,
    tree_files,
)

Status = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class Check:
    tool: str
    target: str
    status: Status
    message: str = ""


def tool_path(tool: str) -> str | None:
    """Find a tool on PATH or beside the running Python (a venv that is not activated)."""
    beside = Path(sys.executable).parent / tool
    if beside.exists():
        return str(beside)
    return shutil.which(tool)


def missing(tool: str, package: str, target: str) -> Check:
    return Check(tool, target, "failed", f"{tool} is not installed: install it with `{package}`")


def run_tool(tool: str, args: list[str], target: str, package: str, *, cwd: Path | None = None,
             env: dict[str, str] | None = None, timeout: int = 300) -> Check:
    """Run one validator; its own output is the message when it fails."""
    from stagectl.validators import base

    path = tool_path(tool)
    if path is None:
        return missing(tool, package, target)
    result = base.run([path, *args], cwd=cwd, env=env, timeout=timeout)
    if result.returncode == 0:
        return Check(tool, target, "passed")
    return Check(tool, target, "failed", result.output or f"exit {result.returncode}")


def _from_cache(stored: list[Cached], target: str) -> list[Check]:
    return [Check(c.tool, target, "passed", c.message) for c in stored]


def _keep(results: ResultCache, key: str | None, checks: list[Check]) -> None:
    if key is not None and checks and all(c.status == "passed" for c in checks):
        results.put(key, [Cached(c.tool, c.status, c.message) for c in checks])


# --- collection-level checks --------------------------------------------------------------------

def collection_digest() -> str:
    return source_digest(collection.collection_root())


def _ansible_env() -> dict[str, str]:
    return {**collection.ansible_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def syntax_checks(root: Path, vault_password_file: Path, results: ResultCache | None = None) -> list[Check]:
    """`ansible-playbook --syntax-check` of every playbook: one run for all of them; only when
    that fails, one per playbook, so each failure names its playbook."""
    results = results or ResultCache(None)
    playbooks = sorted((collection.collection_root() / "playbooks").glob("*.yml"))
    package = "pip install stagectl (ansible-core comes with it)"
    path = tool_path("ansible-playbook")
    version = python_tool_version("ansible-playbook", path, ["ansible-core"])
    inventory = root / INVENTORY
    key = (
        digest("syntax-check", version, collection_digest(), inventory.read_bytes())
        if version and results.enabled and inventory.is_file() else None
    )
    stored = results.get(key)
    if stored is not None:
        return [Check(c.tool, f"playbooks/{pb.name}", "passed", c.message) for pb, c in zip(playbooks, stored, strict=False)]

    def check(books: Sequence[Path], target: str) -> Check:
        return run_tool(
            "ansible-playbook",
            ["--syntax-check", "-i", str(inventory), "--vault-password-file", str(vault_password_file),
             *map(str, books)],
            target=target, package=package, env=_ansible_env(),
        )

    together = check(playbooks, "playbooks")
    if together.status == "passed":
        checks = [Check("ansible-playbook", f"playbooks/{pb.name}", "passed") for pb in playbooks]
    elif path is None:
        checks = [missing("ansible-playbook", package, f"playbooks/{pb.name}") for pb in playbooks]
    else:
        checks = [check([pb], f"playbooks/{pb.name}") for pb in playbooks]
    if len(checks) == len(playbooks):
        _keep(results, key, checks)
    return checks


def ansible_lint(results: ResultCache | None = None) -> Check:
    """ansible-lint's production profile on the collection; run again only when a file of the
    collection or ansible-lint/ansible-core changed."""
    results = results or ResultCache(None)
    target = "collection stagectl.staging"
    version = python_tool_version("ansible-lint", tool_path("ansible-lint"), ["ansible-lint", "ansible-core"])
    key = digest("ansible-lint", version, collection_digest()) if version and results.enabled else None
    stored = results.get(key)
    if stored is not None:
        return _from_cache(stored, target)[0]
    check = run_tool(
        "ansible-lint",
        ["--offline", "--profile", "production", "--nocolor", "-q", "."],
        target=target,
        package="pip install ansible-lint",
        cwd=collection.collection_root(),
        env={**collection.ansible_env(), "ANSIBLE_LINT_NODEPS": "0"},
        timeout=600,
    )
    _keep(results, key, [check])
    return check


# --- per-file checks ----------------------------------------------------------------------------

FileChecker = Callable[[RenderedFile], list[Check]]


@dataclass(frozen=True)
class Checker:
    """One validator of a file kind. `tool`: the executable whose version keys its cached results
    (None: in-process checks, never cached); `reads`: what the check reads besides the file
    itself ("directory": every file under the file's directory, e.g. the rule files of a
    Prometheus configuration, the env files of a compose file)."""

    run: FileChecker
    tool: str | None = None
    version_args: tuple[str, ...] = ("--version",)
    reads: Literal["file", "directory"] = "file"


YAML_KINDS = {
    "compose", "prometheus_config", "prometheus_rules", "prometheus_web", "alertmanager", "blackbox",
    "loki", "grafana_provisioning", "yaml",
}
YAMLLINT_CONFIG = "{extends: relaxed, rules: {line-length: disable, document-start: disable}}"
YAMLLINT_BATCH = 100  # files per yamllint run
_YAMLLINT_LINE = re.compile(r"^(?P<file>.+?):\d+:\d+: \[(?:error|warning)\] ")


def _shellcheck(file: RenderedFile) -> list[Check]:
    return [run_tool("shellcheck", ["-x", str(file.local)], file.dest, "apt-get install shellcheck")]


def _docker_compose(file: RenderedFile) -> list[Check]:
    from stagectl.validators import compose

    return compose.check_file(file)


def _checkers() -> dict[str, list[Checker]]:
    from stagectl.validators import prometheus, static

    promtool = {"tool": "promtool", "reads": "directory"}
    amtool = {"tool": "amtool", "reads": "directory"}
    static_check = Checker(static.check_file)
    return {
        "compose": [Checker(_docker_compose, "docker", ("compose", "version"), "directory")],
        "prometheus_config": [Checker(prometheus.check_config_file, **promtool)],  # type: ignore[arg-type]
        "prometheus_rules": [Checker(prometheus.check_rules_file, **promtool)],  # type: ignore[arg-type]
        "prometheus_web": [Checker(prometheus.check_web_config_file, **promtool)],  # type: ignore[arg-type]
        "alertmanager": [Checker(prometheus.check_alertmanager_file, **amtool)],  # type: ignore[arg-type]
        "blackbox": [static_check],
        "loki": [static_check],
        "alloy": [static_check],
        "grafana_ini": [static_check],
        "grafana_provisioning": [static_check],
        "nginx_main": [],  # checked per container tree (_nginx_checks)
        "nginx_project": [],
        "shell": [Checker(_shellcheck, "shellcheck")],
        "systemd": [static_check],
        "dockerfile": [static_check],
        "env": [static_check],
        "yaml": [],  # yamllint only (_yamllint_checks)
        "json": [static_check],
        "text": [],
    }


def _host_root(file: RenderedFile) -> Path:
    return Path(str(file.local)[: -len(file.dest.lstrip("/"))])


def _key(file: RenderedFile, checker: Checker, results: ResultCache) -> str | None:
    if checker.tool is None or not results.enabled:
        return None
    version = tool_version(checker.tool, base.find_tool(checker.tool), checker.version_args)
    if version is None:
        return None
    reads = tree_files(file.local.parent) if checker.reads == "directory" else [file.local]
    name = getattr(checker.run, "__qualname__", repr(checker.run))
    # stagectl's version too: part of some checks (compose policy) is stagectl's own code.
    return digest(__version__, name, version, file.kind, file.dest, files_digest(reads, _host_root(file)))


def _run_checker(file: RenderedFile, checker: Checker, results: ResultCache) -> list[Check]:
    key = _key(file, checker, results)
    stored = results.get(key)
    if stored is not None:
        return _from_cache(stored, file.dest)
    checks = checker.run(file)
    _keep(results, key, checks)
    return checks


Numbered = list[tuple[int, Check]]  # checks with the position of their file in the plan


def _done(value: Numbered) -> Future[Numbered]:
    future: Future[Numbered] = Future()
    future.set_result(value)
    return future


def _yamllint_checks(
    files: list[tuple[int, RenderedFile]], results: ResultCache, pool: ThreadPoolExecutor
) -> list[Future[Numbered]]:
    """yamllint on many files per run (its start-up costs more than the check of one file)."""
    path = tool_path("yamllint")
    package = "pip install yamllint"
    if path is None:
        return [_done([(i, missing("yamllint", package, f.dest)) for i, f in files])]
    version = python_tool_version("yamllint", path, ["yamllint"])
    keys = {
        i: digest("yamllint", YAMLLINT_CONFIG, version, f.dest, f.local.read_bytes())
        if version and results.enabled else None
        for i, f in files
    }
    checks: Numbered = []
    todo: list[tuple[int, RenderedFile]] = []
    for i, file in files:
        stored = results.get(keys[i])
        if stored is not None:
            checks += [(i, c) for c in _from_cache(stored, file.dest)]
        else:
            todo.append((i, file))

    def lint(batch: list[tuple[int, RenderedFile]]) -> Numbered:
        result = base.run([path, "-s", "-f", "parsable", "-d", YAMLLINT_CONFIG, *(str(f.local) for _, f in batch)],
                          timeout=300)
        problems: dict[str, list[str]] = {}
        for line in result.output.splitlines():
            match = _YAMLLINT_LINE.match(line)
            if match:
                problems.setdefault(match["file"], []).append(line)
        out: Numbered = []
        for i, file in batch:
            mine = problems.get(str(file.local))
            if mine:
                check = Check("yamllint", file.dest, "failed", "\n".join(mine))
            elif result.returncode != 0 and not problems:
                # yamllint itself failed (not a finding about a file): every file gets its words.
                check = Check("yamllint", file.dest, "failed", result.output or f"exit {result.returncode}")
            else:
                check = Check("yamllint", file.dest, "passed")
                _keep(results, keys[i], [check])
            out.append((i, check))
        return out

    return [_done(checks)] + [
        pool.submit(lint, todo[i:i + YAMLLINT_BATCH]) for i in range(0, len(todo), YAMLLINT_BATCH)
    ]


def _nginx_checks(
    files: list[tuple[int, RenderedFile]], results: ResultCache, pool: ThreadPoolExecutor
) -> list[Future[Numbered]]:
    from stagectl.validators import nginx

    # Each server root's compose files are read once, not once per nginx file.
    indexes: dict[Path, nginx.ComposeIndex] = {}
    lock = threading.Lock()

    def check(i: int, file: RenderedFile) -> Numbered:
        root = _host_root(file)
        with lock:
            if root not in indexes:
                indexes[root] = nginx.compose_index(root)
        return [(i, c) for c in nginx.check_file(file, results, indexes[root])]

    return [pool.submit(check, i, f) for i, f in files]


def _check_file(
    i: int, file: RenderedFile, checkers: dict[str, list[Checker]], results: ResultCache
) -> Numbered:
    if file.kind not in checkers:
        return [(i, Check("manifest", file.dest, "failed", f"unknown kind '{file.kind}' in role {file.role}"))]
    return [(i, check) for checker in checkers[file.kind] for check in _run_checker(file, checker, results)]


@contextmanager
def _interruptible(pool: ThreadPoolExecutor) -> Iterator[ThreadPoolExecutor]:
    """Ctrl-C (or any error) ends the running validators and cancels the queued ones, so no
    validator outlives the plan."""
    process.allow_runs()
    try:
        yield pool
    except BaseException:
        process.stop_all()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)


def workers() -> int:
    return max(2, os.cpu_count() or 2)


@contextmanager
def collection_checks(
    root: Path, vault_password_file: Path, *, enabled: bool = True, results: ResultCache | None = None,
) -> Iterator[Callable[[], list[Check]]]:
    """The collection's checks (`--syntax-check`, ansible-lint), started at once in threads of
    their own: long single processes that need no rendered file, so they run beside whatever the
    caller does meanwhile (the render, the file checks). The callable waits for their results;
    leaving the block early (an error, Ctrl-C) ends them."""
    if not enabled:
        yield list
        return
    results = results if results is not None else ResultCache.default()
    with _interruptible(ThreadPoolExecutor(max_workers=2, thread_name_prefix="collection")) as slow:
        syntax = slow.submit(syntax_checks, root, vault_password_file, results=results)
        lint = slow.submit(ansible_lint, results=results)
        yield lambda: [*syntax.result(), lint.result()]


def run_checks(files: Iterable[RenderedFile], *, results: ResultCache | None = None) -> list[Check]:
    """Every check of every file, in the order of `files`."""
    results = results if results is not None else ResultCache.default()
    checkers = _checkers()
    files = list(files)
    with _interruptible(ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="check")) as pool:
        numbered = list(enumerate(files))
        futures = [
            *_yamllint_checks([(i, f) for i, f in numbered if f.kind in YAML_KINDS], results, pool),
            *(pool.submit(_check_file, i, f, checkers, results) for i, f in numbered),
            *_nginx_checks([(i, f) for i, f in numbered if f.kind in ("nginx_main", "nginx_project")], results, pool),
        ]
        # Sorted by file, and per file in the order above (yamllint first, as before).
        found = [(i, order, check) for order, future in enumerate(futures) for i, check in future.result()]
    return [check for _, _, check in sorted(found, key=lambda item: (item[0], item[1]))]
