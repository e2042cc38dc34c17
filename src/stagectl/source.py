"""Inspecting a Django project's source: how it is built and run, read from its files.

Pure functions over a directory (plus `checkout` for a git URL). The app's code is never imported
or executed: settings and URL modules are read with `ast`, and only the common literal forms are
resolved (`BASE_DIR / "static"`, `os.path.join(BASE_DIR, "static")`, plain strings, an
environment lookup's default). Whatever cannot be resolved keeps stagectl's default and is
reported as a warning.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from stagectl.errors import StagectlError
from stagectl.model import AppProcesses, ProjectApp

#: Where the image puts the repository; paths in the settings are resolved against it.
APP_DIR = PurePosixPath("/app")
#: Procfile process types and the `app.processes` key each one fills.
PROCFILE_KEYS = {"web": "web", "release": "release", "worker": "worker",
                 "scheduler": "scheduler", "beat": "scheduler", "clock": "scheduler"}
HEALTH_NAMES = ("healthz", "health", "healthcheck", "livez", "ping")
READY_NAMES = ("readyz", "ready", "readiness")
# Directories that never hold the app's own code.
SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", "site-packages", ".tox"})
GIT_TIMEOUT = 300


class SourceError(StagectlError):
    """The source is missing, unreachable, or not a Django project stagectl can run."""


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


def python_version(top: Path, result: Inspection) -> str | None:
    """Major.minor from .python-version, runtime.txt or requires-python, in that order."""
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
    return None


# --- Django: manage.py, settings, URLs ----------------------------------------------------------


def find_manage_py(top: Path) -> Path:
    if (top / "manage.py").is_file():
        return top / "manage.py"
    below = sorted(p for p in top.glob("*/manage.py") if p.parent.name not in SKIP_DIRS)
    if below:
        return below[0]
    raise SourceError(
        f"{top} is not a Django project: no manage.py at its top or one directory down",
        hint="point --repo at the directory that holds manage.py (or its parent)",
    )


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(errors="replace"), filename=str(path))
    except SyntaxError:
        return None


def settings_from_manage_py(manage: Path) -> str | None:
    """The module of `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "...")`."""
    tree = _parse(manage)
    for node in ast.walk(tree) if tree else ():
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "setdefault"
            and len(node.args) == 2
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
            and node.args[0].value == "DJANGO_SETTINGS_MODULE"  # type: ignore[attr-defined]
        ):
            return str(node.args[1].value)  # type: ignore[attr-defined]
    return None


def module_file(base: Path, module: str) -> Path | None:
    candidate = base.joinpath(*module.split("."))
    for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if path.is_file():
            return path
    return None


class _Evaluator:
    """Resolves the literal forms settings files use for paths and strings. `None`: not resolvable."""

    def __init__(self, file_in_container: PurePosixPath) -> None:
        self.file = file_in_container
        self.names: dict[str, Any] = {}

    def value(self, node: ast.expr) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bool | int):
            return node.value
        if isinstance(node, ast.Name):
            return self.file if node.id == "__file__" else self.names.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            left, right = self.value(node.left), self.value(node.right)
            if isinstance(left, PurePosixPath) and isinstance(right, str | PurePosixPath):
                return _join(left, str(right))
            return None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = self.value(node.left), self.value(node.right)
            return left + right if isinstance(left, str) and isinstance(right, str) else None
        if isinstance(node, ast.Attribute):
            inner = self.value(node.value)
            if node.attr == "parent" and isinstance(inner, PurePosixPath):
                return inner.parent
            return None
        if isinstance(node, ast.Call):
            return self._call(node)
        return None

    def _call(self, node: ast.Call) -> Any:
        name = _dotted(node.func)
        args = [self.value(a) for a in node.args]
        if name in ("Path", "pathlib.Path", "PurePath", "PosixPath") and len(args) == 1:
            return PurePosixPath(str(args[0])) if isinstance(args[0], str | PurePosixPath) else None
        if name in ("str", "os.fspath") and len(args) == 1:
            return str(args[0]) if isinstance(args[0], str | PurePosixPath) else None
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute") and not args:
            inner = self.value(node.func.value)
            return inner if isinstance(inner, PurePosixPath) else None
        if name in ("os.path.dirname",) and len(args) == 1 and isinstance(args[0], str | PurePosixPath):
            return PurePosixPath(str(args[0])).parent
        if name in ("os.path.abspath", "os.path.realpath", "os.path.normpath") and len(args) == 1:
            return PurePosixPath(str(args[0])) if isinstance(args[0], str | PurePosixPath) else None
        if name == "os.path.join" and args and all(isinstance(a, str | PurePosixPath) for a in args):
            joined = PurePosixPath(str(args[0]))
            for part in args[1:]:
                joined = _join(joined, str(part))
            return joined
        if name in ("os.environ.get", "os.getenv", "environ.get") and len(node.args) >= 2:
            return args[1]  # the default: what the app uses unless the deploy sets the variable
        return None


def _join(base: PurePosixPath, part: str) -> PurePosixPath:
    return PurePosixPath(os.path.normpath(str(base / part)))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


SETTINGS_KEYS = ("WSGI_APPLICATION", "STATIC_ROOT", "MEDIA_ROOT", "STATIC_URL", "MEDIA_URL")


def read_settings(base: Path, module: str, base_in_container: PurePosixPath) -> dict[str, Any]:
    """Top-level assignments of a settings module, in order, following `from X import *` of
    modules inside the project (the common base/production split). Values: resolved literal, or
    the marker `...` for an assignment that could not be resolved."""
    values: dict[str, Any] = {}
    _read_module(base, module, base_in_container, values, set())
    return values


def _read_module(base: Path, module: str, base_in_container: PurePosixPath, values: dict[str, Any],
                 seen: set[str]) -> None:
    path = module_file(base, module)
    if path is None or module in seen:
        return
    seen.add(module)
    tree = _parse(path)
    if tree is None:
        return
    evaluator = _Evaluator(base_in_container / path.relative_to(base).as_posix())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names):
            target = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - node.level + 1] if node.level > 1 else parts
                target = ".".join([*parts, *( [node.module] if node.module else [])])
            _read_module(base, target, base_in_container, values, seen)
            evaluator.names.update({k: v for k, v in values.items() if v is not ...})
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = evaluator.value(node.value)
            for target_node in targets:
                if isinstance(target_node, ast.Name):
                    values[target_node.id] = ... if value is None else value
                    if value is not None:
                        evaluator.names[target_node.id] = value


def python_files(top: Path) -> list[Path]:
    """The project's own .py files, in a stable order, without virtualenvs, node_modules or .git
    (pruned, not walked), at most MAX_PY_FILES of them."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS and not d.startswith("."))
        found += [Path(directory) / f for f in sorted(files) if f.endswith(".py")]
        if len(found) >= MAX_PY_FILES:
            break
    return found[:MAX_PY_FILES]


def url_patterns(top: Path) -> list[tuple[str, str | None]]:
    """(route, included module) of every `path`/`re_path` call in the project's urls.py files."""
    routes: list[tuple[str, str | None]] = []
    for path in python_files(top):
        if path.name != "urls.py":
            continue
        tree = _parse(path)
        for node in ast.walk(tree) if tree else ():
            if not (isinstance(node, ast.Call) and _dotted(node.func) in ("path", "re_path", "url")):
                continue
            if not (node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                continue
            route = node.args[0].value.lstrip("^").rstrip("$")
            included = None
            if len(node.args) > 1 and isinstance(node.args[1], ast.Call) and _dotted(node.args[1].func) == "include":
                inner = node.args[1].args[0] if node.args[1].args else None
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    included = inner.value
            routes.append((route, included))
    return routes


PROBE_LITERAL = re.compile(r"^/(healthz|health|healthcheck|livez|readyz|ready|metrics)/?$")
# Enough for any Django project's own code; a vendored tree beyond it is not read.
MAX_PY_FILES = 3000


def probe_literals(top: Path) -> list[str]:
    """String constants like "/healthz" anywhere in the project's Python code: probes answered by
    a middleware or a view map rather than urls.py."""
    found: list[str] = []
    for path in python_files(top):
        tree = _parse(path)
        for node in ast.walk(tree) if tree else ():
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and PROBE_LITERAL.match(node.value) and node.value not in found):
                found.append(node.value)
    return found


def _route_path(route: str) -> str | None:
    path = "/" + route
    return path if re.match(r"^/[A-Za-z0-9_./-]*$", path) else None


def detect_paths(top: Path, dependencies: set[str], result: Inspection) -> dict[str, Any]:
    """health_path, ready_path and metrics_path from the URL configuration and dependencies."""
    routes = url_patterns(top)
    out: dict[str, Any] = {}
    for route, included in routes:
        path = _route_path(route)
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
    return AppProcesses(**commands)


def _container_path(value: Any, key: str, workdir: PurePosixPath, result: Inspection) -> str | None:
    if not isinstance(value, PurePosixPath | str) or not str(value):
        return None
    # A relative path is relative to the working directory: manage.py's directory in the image.
    path = str(PurePosixPath(os.path.normpath(str(workdir / str(value)))))
    if not path.startswith(str(APP_DIR) + "/"):
        result.warnings.append(f"{key} is {path}, outside the app directory {APP_DIR}: check that the "
                               "image can write there")
    return path


def inspect_source(top: Path, *, settings: str | None = None, dockerfile: str | None = None) -> Inspection:
    """Everything `stagectl project add` detects in a source directory."""
    if not top.is_dir():
        raise SourceError(f"{top}: no such directory", hint="pass --repo a local directory or a git URL")
    result = Inspection(app=ProjectApp(), manage_py="")
    values: dict[str, Any] = detect_builder(top, dockerfile, result)
    values["python"] = python_version(top, result)

    manage = find_manage_py(top)
    result.manage_py = manage.relative_to(top).as_posix()
    result.found.append(("manage.py", result.manage_py, "top directory" if manage.parent == top else "one level down"))
    base = manage.parent
    base_in_container = APP_DIR / base.relative_to(top).as_posix() if base != top else APP_DIR
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
    values["settings"] = module
    result.found.append(("settings", module, "--settings" if settings else result.manage_py))
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

    defaults = ProjectApp()
    for key in ("STATIC_ROOT", "MEDIA_ROOT"):
        name = key.lower()
        if key not in assigned:
            continue
        resolved = _container_path(assigned[key], key, base_in_container, result)
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


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    if shutil.which("git") is None:
        raise SourceError("'git' is not installed", hint="install git to add a project from a git URL")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT,
                              check=False, env=env)
    except subprocess.TimeoutExpired:
        raise SourceError(f"git {args[0]} took longer than {GIT_TIMEOUT}s") from None


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
