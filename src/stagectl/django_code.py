"""Reading a Django project's Python code without running it: manage.py, the settings module and
the URL configuration, parsed with `ast`. Only the common literal forms are resolved
(`BASE_DIR / "static"`, `os.path.join(BASE_DIR, "static")`, plain strings, an environment
lookup's default); anything else comes back unresolved, for the caller to report.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

from stagectl.errors import SourceError

# Directories that never hold the app's own code.
SKIP_DIRS = frozenset({".git", ".venv", "venv", "node_modules", "__pycache__", "site-packages", ".tox"})
PROBE_LITERAL = re.compile(r"^/(healthz|health|healthcheck|livez|readyz|ready|metrics)/?$")
# Enough for any Django project's own code; a vendored tree beyond it is not read.
MAX_PY_FILES = 3000


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


def syntax_error(path: Path) -> str | None:
    """Why a Python file does not parse ("line 3: '[' was never closed"), or None."""
    try:
        ast.parse(path.read_text(errors="replace"), filename=str(path))
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
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


#: Last parts of settings modules meant for a developer's machine, and of the ones a server runs,
#: in order of preference for a staging server.
DEVELOPMENT_SETTINGS = frozenset({"dev", "development", "develop", "local"})
SERVER_SETTINGS = ("staging", "production", "prod")


def server_settings(base: Path, module: str) -> str | None:
    """The staging or production sibling of a development settings module (mysite.settings.dev ->
    mysite.settings.production), when the project has one; None otherwise."""
    package, _, leaf = module.rpartition(".")
    if not package or leaf not in DEVELOPMENT_SETTINGS:
        return None
    return next(
        (f"{package}.{name}" for name in SERVER_SETTINGS if module_file(base, f"{package}.{name}")), None
    )


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
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.value(item) for item in node.elts]
            return items if all(isinstance(item, str) for item in items) else None
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
        else:
            # A list changed in place (`+=`, `.append(...)`) or set again under an `if`/`try` has
            # no value known before run time. A path set again under an `if` keeps its top-level
            # value, the likelier one on a server (and what stagectl always read).
            for name in _names_changed(node):
                if isinstance(values.get(name), list):
                    values[name] = ...
                    evaluator.names.pop(name, None)


def _names_changed(statement: ast.stmt) -> set[str]:
    """Module-level names a statement assigns or mutates (not the locals of a def or class)."""
    changed: set[str] = set()
    pending: list[ast.AST] = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            changed |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name)
              and node.func.attr in ("append", "extend", "insert", "update", "remove")):
            changed.add(node.func.value.id)
    return changed


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


def route_path(route: str) -> str | None:
    path = "/" + route
    return path if re.match(r"^/[A-Za-z0-9_./-]*$", path) else None
