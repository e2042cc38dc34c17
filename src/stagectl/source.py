"""Inspecting a Django project's source: how it is built and run, read from its files.

Pure functions over a directory (plus `checkout` for a git URL). The app's code is never imported
or executed: settings and URL modules are read with `ast` (`stagectl.django_code`). Whatever
cannot be resolved statically keeps stagectl's default and is reported as a warning.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from stagectl import process
from stagectl.django_code import (
    find_manage_py,
    module_file,
    probe_literals,
    read_settings,
    route_path,
    server_settings,
    settings_from_manage_py,
    syntax_error,
    url_patterns,
)
from stagectl.errors import SourceError
from stagectl.model import AppProcesses, ProjectApp
from stagectl.process import Completed

#: Where the image puts the repository; paths in the settings are resolved against it.
APP_DIR = PurePosixPath("/app")
#: Procfile process types and the `app.processes` key each one fills.
PROCFILE_KEYS = {"web": "web", "release": "release", "worker": "worker",
                 "scheduler": "scheduler", "beat": "scheduler", "clock": "scheduler"}
HEALTH_NAMES = ("healthz", "health", "healthcheck", "livez", "ping")
READY_NAMES = ("readyz", "ready", "readiness")
GIT_TIMEOUT = 300


@dataclass
class Inspection:
    """What the source says about the app: the `app:` mapping plus how each value was found."""

    app: ProjectApp
    #: manage.py, relative to the source's top directory.
    manage_py: str
    #: (what, value, where it came from) for the summary.
    found: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dependencies: set[str] = field(default_factory=set)
    #: ALLOWED_HOSTS when the settings fix it to a literal list (None: read at run time, or unknown).
    allowed_hosts: list[str] | None = None

    @property
    def worker(self) -> bool:
        return self.app.processes.worker is not None

    @property
    def scheduler(self) -> bool:
        return self.app.processes.scheduler is not None


def normalise(name: str) -> str:
    """PEP 503 name normalisation: Django_Prometheus and django-prometheus are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


# --- dependencies and builder -------------------------------------------------------------------


def requirement_names(top: Path, rel: str, _seen: frozenset[str] = frozenset()) -> set[str]:
    """Package names a requirements file asks for, following `-r`/`-c` includes (relative to the
    including file). A missing include is an error: pip would fail on it in the image build."""
    path = top / rel
    if rel in _seen:
        return set()
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise SourceError(f"{rel}: file not found in the source") from None
    names: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = re.match(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)", line)
        if include:
            target = os.path.normpath(str(PurePosixPath(rel).parent / include.group(2)))
            if not (top / target).is_file():
                raise SourceError(
                    f"{rel} line {number}: includes {include.group(2)}, which is not in the source",
                    hint="add the file to the repository or remove the include",
                )
            found = requirement_names(top, target, _seen | {rel})
            if include.group(1) in ("-r", "--requirement"):
                names |= found
            continue
        if line.startswith("-"):
            continue  # pip options (--index-url, -e ., ...)
        match = _REQ_NAME.match(line)
        if match and "://" not in line:
            names.add(normalise(match.group(1)))
    return names


def _pyproject(top: Path) -> dict[str, Any]:
    path = top / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"pyproject.toml is not valid TOML: {exc}") from None


def pyproject_names(data: dict[str, Any]) -> set[str]:
    """Dependency names from PEP 621, dependency groups and Poetry tables."""
    specs: list[str] = list(data.get("project", {}).get("dependencies", []) or [])
    for group in (data.get("project", {}).get("optional-dependencies") or {}).values():
        specs += list(group)
    for group in (data.get("dependency-groups") or {}).values():
        specs += [s for s in group if isinstance(s, str)]
    names = {normalise(m.group(1)) for s in specs if (m := _REQ_NAME.match(s))}
    poetry = data.get("tool", {}).get("poetry", {})
    tables = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    tables += [g.get("dependencies") or {} for g in (poetry.get("group") or {}).values()]
    for table in tables:
        names |= {normalise(n) for n in table if n.lower() != "python"}
    return names


def detect_builder(top: Path, dockerfile: str | None, result: Inspection) -> dict[str, Any]:
    """The `builder` (and its file) for the source, recording the dependency names it lists."""
    data = _pyproject(top)
    if dockerfile is not None:
        if not (top / dockerfile).is_file():
            raise SourceError(f"--dockerfile {dockerfile}: no such file in the source")
        result.dependencies |= pyproject_names(data)
        result.found.append(("builder", "dockerfile", f"--dockerfile {dockerfile}"))
        return {"builder": "dockerfile", "dockerfile": dockerfile}
    if (top / "uv.lock").is_file() and data:
        result.dependencies |= pyproject_names(data)
        result.found.append(("builder", "uv", "pyproject.toml + uv.lock"))
        return {"builder": "uv"}
    if (top / "poetry.lock").is_file():
        if not data:
            raise SourceError("poetry.lock without pyproject.toml", hint="commit pyproject.toml too")
        result.dependencies |= pyproject_names(data)
        result.found.append(("builder", "poetry", "poetry.lock"))
        return {"builder": "poetry"}
    if (top / "requirements.txt").is_file():
        result.dependencies |= requirement_names(top, "requirements.txt")
        result.found.append(("builder", "pip", "requirements.txt"))
        return {"builder": "pip", "requirements": "requirements.txt"}
    if data.get("project"):
        result.dependencies |= pyproject_names(data)
        result.warnings.append("pyproject.toml has no uv.lock: the build runs `uv sync` without a lock file")
        result.found.append(("builder", "uv", "pyproject.toml (no lock file)"))
        return {"builder": "uv"}
    if (top / "Dockerfile").is_file():
        result.found.append(("builder", "dockerfile", "Dockerfile (no dependency file)"))
        return {"builder": "dockerfile", "dockerfile": "Dockerfile"}
    raise SourceError(
        "no dependency file in the source: expected pyproject.toml + uv.lock, poetry.lock, "
        "requirements.txt or a Dockerfile",
        hint="add one, or pass --dockerfile PATH to build with the app's own Dockerfile",
    )


def python_version(top: Path, result: Inspection, requirements: str = "requirements.txt") -> str | None:
    """Major.minor from .python-version, runtime.txt, requires-python or the pip-compile header
    of the requirements file, in that order."""
    version_file = top / ".python-version"
    if version_file.is_file():
        match = re.match(r"^\s*(?:cpython-|python-?)?(3\.\d+)", version_file.read_text())
        if match:
            result.found.append(("python", match.group(1), ".python-version"))
            return match.group(1)
    runtime = top / "runtime.txt"
    if runtime.is_file():
        match = re.match(r"^\s*python-(3\.\d+)", runtime.read_text())
        if match:
            result.found.append(("python", match.group(1), "runtime.txt"))
            return match.group(1)
    data = _pyproject(top)
    requires = data.get("project", {}).get("requires-python") or (
        data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
    )
    if isinstance(requires, str):
        match = re.search(r"(?:>=|~=|\^|==|~)\s*(3\.\d+)", requires)
        if match:
            result.found.append(("python", match.group(1), f"requires-python {requires.strip()}"))
            return match.group(1)
    # "# This file is autogenerated by pip-compile with Python 3.10": the pins were resolved there.
    locked = top / requirements
    if locked.is_file():
        match = re.search(r"(?m)^#.*pip-compile with Python (3\.\d+)", locked.read_text(errors="replace")[:2000])
        if match:
            result.found.append(("python", match.group(1), f"{requirements} (pip-compile header)"))
            return match.group(1)
    return None


# --- Django: manage.py, settings, URLs ----------------------------------------------------------


def detect_paths(top: Path, dependencies: set[str], result: Inspection) -> dict[str, Any]:
    """health_path, ready_path and metrics_path from the URL configuration and dependencies."""
    routes = url_patterns(top)
    out: dict[str, Any] = {}
    for route, included in routes:
        path = route_path(route)
        if path is None:
            continue
        last = route.strip("/").rsplit("/", 1)[-1]
        if included == "health_check.urls" and "health_path" not in out:
            out["health_path"] = path
            result.found.append(("health_path", path, "include('health_check.urls')"))
        elif included is None and last in HEALTH_NAMES and "health_path" not in out:
            out["health_path"] = path
            result.found.append(("health_path", path, "urls.py"))
        elif included is None and last in READY_NAMES and "ready_path" not in out:
            out["ready_path"] = path
            result.found.append(("ready_path", path, "urls.py"))
        elif included == "django_prometheus.urls":
            out["metrics_path"] = path.rstrip("/") + "/metrics"
            result.found.append(("metrics_path", out["metrics_path"], "include('django_prometheus.urls')"))
    for literal in probe_literals(top):
        name = literal.strip("/")
        key = "metrics_path" if name == "metrics" else "ready_path" if name in READY_NAMES else "health_path"
        if key not in out:
            out[key] = literal
            result.found.append((key, literal, "a path literal in the code (middleware or view)"))
    if "metrics_path" not in out and "django-prometheus" in dependencies:
        out["metrics_path"] = "/metrics"
        result.found.append(("metrics_path", "/metrics", "django-prometheus dependency"))
        result.warnings.append(
            "django-prometheus is a dependency but no urls.py includes django_prometheus.urls: "
            "assuming /metrics (set app.metrics_path if it lives elsewhere)"
        )
    if "health_path" not in out:
        result.warnings.append("no health URL (healthz, health, ...) found: the health check asks / (app.health_path)")
    return out


def read_procfile(top: Path, result: Inspection) -> AppProcesses:
    path = top / "Procfile"
    if not path.is_file():
        return AppProcesses()
    commands: dict[str, str] = {}
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        kind, _, command = line.partition(":")
        key = PROCFILE_KEYS.get(kind.strip())
        if key is None:
            result.warnings.append(f"Procfile: process '{kind.strip()}' is not one stagectl runs (web, release, "
                                   "worker, scheduler/beat/clock); left out")
        elif key in commands:
            result.warnings.append(f"Procfile: a second {key} process ('{kind.strip()}') is left out")
        else:
            commands[key] = command.strip()
            result.found.append((f"processes.{key}", command.strip(), f"Procfile {kind.strip()}"))
    try:
        return AppProcesses(**commands)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise SourceError(
            f"Procfile: the {error['loc'][0]} process cannot run: {error['msg'].removeprefix('Value error, ')}",
            hint="fix that Procfile line (nothing was written)",
        ) from None


def _container_path(value: Any, key: str, workdir: PurePosixPath, app_dir: PurePosixPath,
                    result: Inspection) -> str | None:
    if not isinstance(value, PurePosixPath | str) or not str(value):
        return None
    # A relative path is relative to the working directory: manage.py's directory in the image.
    path = str(PurePosixPath(os.path.normpath(str(workdir / str(value)))))
    if not path.startswith(str(app_dir) + "/"):
        result.warnings.append(f"{key} is {path}, outside the app directory {app_dir}: check that the "
                               "image can write there")
    return path


def dockerfile_workdir(path: Path) -> PurePosixPath:
    """The app directory in an image built from the app's own Dockerfile: the last WORKDIR of its
    final stage (where `COPY . .` puts the source), else stagectl's /app."""
    workdir = APP_DIR
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return workdir
    for line in lines:
        words = line.split()
        if len(words) < 2 or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            workdir = APP_DIR
        elif instruction == "WORKDIR" and "$" not in words[1]:
            workdir = workdir / words[1].strip("\"'")
    return PurePosixPath(os.path.normpath(str(workdir)))


def inspect_source(top: Path, *, settings: str | None = None, dockerfile: str | None = None) -> Inspection:
    """Everything `stagectl project add` detects in a source directory."""
    if not top.is_dir():
        raise SourceError(f"{top}: no such directory", hint="pass --repo a local directory or a git URL")
    result = Inspection(app=ProjectApp(), manage_py="")
    values: dict[str, Any] = detect_builder(top, dockerfile, result)
    values["python"] = python_version(top, result, values.get("requirements", "requirements.txt"))

    manage = find_manage_py(top)
    result.manage_py = manage.relative_to(top).as_posix()
    result.found.append(("manage.py", result.manage_py, "top directory" if manage.parent == top else "one level down"))
    base = manage.parent
    app_dir = dockerfile_workdir(top / values["dockerfile"]) if values["builder"] == "dockerfile" else APP_DIR
    base_in_container = app_dir / base.relative_to(top).as_posix() if base != top else app_dir
    if base != top:
        values["directory"] = base.relative_to(top).as_posix()
        result.warnings.append(f"manage.py is in {values['directory']}/: the app runs from {base_in_container}")

    module = settings or settings_from_manage_py(manage)
    if module is None:
        raise SourceError(
            f"{result.manage_py} sets no DJANGO_SETTINGS_MODULE (os.environ.setdefault)",
            hint="pass --settings MODULE, e.g. --settings mysite.settings",
        )
    if module_file(base, module) is None:
        raise SourceError(
            f"settings module {module} not found (looked for {module.replace('.', '/')}.py "
            f"under {base.relative_to(top).as_posix() or '.'})",
            hint="pass --settings MODULE with the module manage.py runs with",
        )
    found_in = "--settings" if settings else result.manage_py
    server_module = None if settings else server_settings(base, module)
    if server_module is not None:
        result.warnings.append(
            f"{result.manage_py} runs {module}, settings for a developer's machine: the server runs "
            f"{server_module} (pass --settings to choose another)"
        )
        module, found_in = server_module, f"beside {module}"
    values["settings"] = module
    settings_file = module_file(base, module)
    if settings_file is not None and (error := syntax_error(settings_file)):
        raise SourceError(
            f"{settings_file.relative_to(top).as_posix()} (settings {module}) is not valid Python: {error}",
            hint="fix it in the source: Django cannot start with it",
        )
    result.found.append(("settings", module, found_in))
    assigned = read_settings(base, module, base_in_container)

    wsgi = assigned.get("WSGI_APPLICATION")
    if isinstance(wsgi, str) and "." in wsgi:
        mod, _, attribute = wsgi.rpartition(".")
        values["wsgi"] = f"{mod}:{attribute}"
        result.found.append(("wsgi", values["wsgi"], "WSGI_APPLICATION"))
    else:
        package = module.rsplit(".", 2)[0] if module.count(".") >= 1 else module
        guess = f"{package}.wsgi"
        if module_file(base, guess) is None:
            raise SourceError(
                f"settings {module} have no WSGI_APPLICATION and there is no {guess} module",
                hint="set WSGI_APPLICATION in the settings, or app.wsgi in the inventory",
            )
        values["wsgi"] = f"{guess}:application"
        result.warnings.append(f"WSGI_APPLICATION not readable in {module}: using {values['wsgi']}")

    if isinstance(assigned.get("ALLOWED_HOSTS"), list):
        result.allowed_hosts = assigned["ALLOWED_HOSTS"]
    defaults = ProjectApp()
    for key in ("STATIC_ROOT", "MEDIA_ROOT"):
        name = key.lower()
        if key not in assigned:
            continue
        resolved = _container_path(assigned[key], key, base_in_container, app_dir, result)
        if resolved is None:
            result.warnings.append(f"{key} in {module} is not a path stagectl can read statically: "
                                   f"keeping {getattr(defaults, name)} (set app.{name} to override)")
            continue
        values[name] = resolved
        result.found.append((name, resolved, key))
    for key in ("STATIC_URL", "MEDIA_URL"):
        name = key.lower()
        raw = assigned.get(key)
        if raw is None:
            continue
        if isinstance(raw, str) and not raw.startswith(("http://", "https://", "//")):
            url = "/" + raw.strip("/") + "/"
            values[name] = url
            result.found.append((name, url, key))
        else:
            result.warnings.append(f"{key} in {module} is not a local path stagectl can read: keeping "
                                   f"{getattr(defaults, name)} (set app.{name} to override)")

    values.update(detect_paths(top, result.dependencies, result))
    values["processes"] = read_procfile(top, result)
    try:
        result.app = ProjectApp(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SourceError(f"the detected app settings are not valid ({problems})",
                          hint="pass --settings / --dockerfile, or fix the values in the source") from None
    return result


# --- git sources --------------------------------------------------------------------------------


def is_git_url(source: str) -> bool:
    return "://" in source or bool(re.match(r"^[\w.-]+@[\w.-]+:", source))


def _git(args: list[str], cwd: Path | None = None) -> Completed:
    if shutil.which("git") is None:
        raise SourceError("'git' is not installed", hint="install git to add a project from a git URL")
    proc = process.run(["git", *args], cwd=cwd, timeout=GIT_TIMEOUT,
                       env={"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"})
    if proc.timed_out:
        raise SourceError(f"git {args[0]} took longer than {GIT_TIMEOUT}s")
    return proc


@contextmanager
def checkout(url: str, ref: str | None) -> Iterator[tuple[Path, str]]:
    """Clone `url` (depth 1, at `ref` or the default branch) into a temporary directory, removed
    afterwards. Yields the directory and the branch or tag checked out."""
    tmp = Path(tempfile.mkdtemp(prefix="stagectl-source-"))
    try:
        args = ["clone", "--quiet", "--depth", "1", *(["--branch", ref] if ref else []), "--", url, str(tmp / "src")]
        proc = _git(args)
        if proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            raise SourceError(
                f"cannot clone {url}{f' at {ref}' if ref else ''}: {detail}",
                hint="check the URL, the --ref and that this machine can reach and read the repository",
            )
        branch = ref or _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=tmp / "src").stdout.strip() or "main"
        yield tmp / "src", branch
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether Django's ALLOWED_HOSTS `patterns` let a request for `host` through ('*', an exact
    name, or '.name' for the name and its subdomains; case-insensitive), as Django's validate_host."""
    host = host.lower()
    for pattern in (p.lower() for p in patterns):
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:]):
            return True
    return False

