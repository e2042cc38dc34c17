"""`nginx -t` on rendered configurations, offline.

A configuration is written for a container: it includes files by their path in the container,
names certificates under /etc/letsencrypt that only exist on the server, and logs to paths that
are not writable here. So the check runs on a scratch copy:

1. the rendered files are copied to `<scratch>/<path in the container>` (the mounts of the
   service, read from the stack's docker-compose.yml, or given explicitly as a `Tree`);
2. every absolute path in a path-taking directive (include, ssl_certificate, root, access_log,
   pid, ...) of every included file is prefixed with `<scratch>`; `user` is dropped (the user
   exists in the image, not here);
3. what the image or the server would provide is made up: throwaway self-signed certificates for
   every ssl_certificate/ssl_certificate_key, the image's mime.types (from the local nginx),
   directories for roots, webroots and logs;
4. `nginx -t -p <scratch>/ -c <scratch><main>` runs, and `<scratch>` is removed from its messages,
   so errors name the file as the container sees it.

Upstreams must be variables resolved at request time (`proxy_pass $upstream`), as the templates
do: a literal host name would need DNS at test time, which the check deliberately does not have.
Directives newer than the local nginx (Debian 12 has 1.22; the image is 1.28) are dropped with an
`info` finding saying so: today only `http2 on;` (1.25.1).
"""

from __future__ import annotations

import glob
import itertools
import re
import shlex
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stagectl.errors import ToolMissing
from stagectl.tlscerts import self_signed
from stagectl.validators.base import Finding, as_checks, errors, missing_check, require_tool, run
from stagectl.validators.cache import Cached, ResultCache, digest, tool_version, tree_files

if TYPE_CHECKING:
    from stagectl.render import RenderedFile
    from stagectl.validate import Check

NGINX_PACKAGE = "nginx"
DEFAULT_MAIN = "/etc/nginx/nginx.conf"
COMPOSE_NAMES = ("docker-compose.yml", "docker-compose.yaml", "compose.yml", "compose.yaml")

# Files the official image ships beside nginx.conf, taken from the local nginx when included.
IMAGE_FILES = ("mime.types", "fastcgi_params", "fastcgi.conf", "scgi_params", "uwsgi_params")
MINIMAL_MIME_TYPES = "types {\n    text/html html;\n    text/css css;\n    application/javascript js;\n}\n"

# The official image's nginx.conf, for stacks that only mount snippets into conf.d/.
IMAGE_MAIN = """\
user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;
events {
    worker_connections 1024;
}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
"""

# Directives whose first argument is a file or directory path.
PATH_DIRECTIVES = frozenset({
    "include", "ssl_certificate", "ssl_certificate_key", "ssl_trusted_certificate",
    "ssl_client_certificate", "ssl_dhparam", "ssl_crl", "ssl_password_file",
    "ssl_session_ticket_key", "ssl_stapling_file", "auth_basic_user_file", "root", "alias",
    "access_log", "error_log", "pid", "lock_file", "load_module", "working_directory",
    "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path",
    "scgi_temp_path", "proxy_cache_path", "fastcgi_cache_path", "uwsgi_cache_path",
    "scgi_cache_path",
})
DIRECTORY_DIRECTIVES = frozenset({
    "root", "alias", "working_directory", "client_body_temp_path", "proxy_temp_path",
    "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path", "proxy_cache_path",
    "fastcgi_cache_path", "uwsgi_cache_path", "scgi_cache_path",
})
PARENT_DIRECTIVES = frozenset({"access_log", "error_log", "pid", "lock_file"})
# Paths that are the same inside and outside a container.
SYSTEM_PREFIXES = ("/dev/", "/proc/")
# Directives the local nginx may be too old for: name -> (version introduced, what it does).
NEWER_DIRECTIVES = {"http2": ((1, 25, 1), "enables HTTP/2 per server")}


@dataclass(frozen=True)
class Tree:
    """A configuration as one container sees it."""

    main: str  # path of the main configuration in the container
    mounts: Mapping[str, Path]  # path in the container -> rendered local file or directory


# --- a small nginx tokenizer: enough to find directives and their arguments --------------------


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int
    quoted: bool


@dataclass(frozen=True)
class _Statement:
    name: str
    args: tuple[_Token, ...]
    start: int
    end: int  # after the terminating ';' or '{'


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        elif char in ";{}":
            yield _Token(char, i, i + 1, False)
            i += 1
        elif char in "\"'":
            j = i + 1
            while j < n and text[j] != char:
                j += 2 if text[j] == "\\" else 1
            yield _Token(text[i + 1 : j], i, j + 1, True)
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ";{}":
                if text[j] == "$" and j + 1 < n and text[j + 1] == "{":  # ${variable}
                    close = text.find("}", j)
                    j = n if close < 0 else close + 1
                else:
                    j += 1
            yield _Token(text[i:j], i, j, False)
            i = j


def _statements(text: str) -> list[_Statement]:
    statements: list[_Statement] = []
    current: list[_Token] = []
    for token in _tokens(text):
        if not token.quoted and token.text in (";", "{"):
            if current:
                statements.append(
                    _Statement(current[0].text, tuple(current[1:]), current[0].start, token.end)
                )
            current = []
        elif not token.quoted and token.text == "}":
            current = []
        else:
            current.append(token)
    return statements


# --- the scratch copy ---------------------------------------------------------------------------


@dataclass
class _Scratch:
    root: Path
    nginx_conf_dir: Path | None
    nginx_version: tuple[int, ...]
    notes: list[Finding] = field(default_factory=list)
    certificates: list[tuple[Path, Path]] = field(default_factory=list)
    keys: list[Path] = field(default_factory=list)

    def local(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def container(self, local: Path) -> str:
        return "/" + str(local.relative_to(self.root))


def _rewrite(path: Path, scratch: _Scratch, seen: set[Path]) -> None:
    """Prefix the paths of one file, make up what it refers to, then follow its includes."""
    seen.add(path)
    text = path.read_text(errors="replace")
    edits: list[tuple[int, int, str]] = []
    includes: list[str] = []
    pending_certificates: list[Path] = []
    pending_keys: list[Path] = []
    for statement in _statements(text):
        if statement.name == "user":
            edits.append((statement.start, statement.end, "# user: dropped for the check"))
            continue
        newer = NEWER_DIRECTIVES.get(statement.name)
        if newer and scratch.nginx_version < newer[0]:
            edits.append((statement.start, statement.end, f"# {statement.name}: dropped for the check"))
            wanted = ".".join(map(str, newer[0]))
            local = ".".join(map(str, scratch.nginx_version))
            note = Finding(
                "nginx", scratch.container(path),
                f"'{statement.name}' ({newer[1]}) was not checked: it needs nginx >= {wanted}, "
                f"the local nginx is {local}",
                "info",
            )
            if note not in scratch.notes:
                scratch.notes.append(note)
            continue
        if statement.name not in PATH_DIRECTIVES or not statement.args:
            continue
        arg = statement.args[0]
        value = arg.text
        if not value.startswith("/") or value.startswith(SYSTEM_PREFIXES) or "$" in value:
            continue
        local = str(scratch.root) + value
        edits.append((arg.start, arg.end, f'"{local}"' if arg.quoted else local))
        target = Path(local)
        if statement.name == "include":
            includes.append(local)
        elif statement.name in DIRECTORY_DIRECTIVES:
            target.mkdir(parents=True, exist_ok=True)
        elif statement.name in PARENT_DIRECTIVES:
            target.parent.mkdir(parents=True, exist_ok=True)
        elif statement.name == "ssl_certificate":
            pending_certificates.append(target)
        elif statement.name == "ssl_certificate_key":
            pending_keys.append(target)
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    path.write_text(text)

    scratch.certificates.extend(zip(pending_certificates, pending_keys, strict=False))
    scratch.keys.extend(pending_keys[len(pending_certificates):])
    for pattern in includes:
        if glob.has_magic(pattern):
            Path(pattern).parent.mkdir(parents=True, exist_ok=True)
            matches = [Path(m) for m in sorted(glob.glob(pattern))]
        else:
            matches = [Path(pattern)]
            if not matches[0].exists() and matches[0].name in IMAGE_FILES:
                _provide_image_file(matches[0], scratch)
                continue
        for match in matches:
            if match.is_file() and match not in seen:
                _rewrite(match, scratch, seen)


def _provide_image_file(target: Path, scratch: _Scratch) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    source = scratch.nginx_conf_dir / target.name if scratch.nginx_conf_dir else None
    if source is not None and source.is_file():
        shutil.copyfile(source, target)
    else:
        target.write_text(MINIMAL_MIME_TYPES if target.name == "mime.types" else "")


def _make_certificates(scratch: _Scratch) -> None:
    """One throwaway self-signed EC certificate, copied wherever one is missing."""
    missing = [(c, k) for c, k in scratch.certificates if not (c.exists() and k.exists())]
    missing_keys = [k for k in scratch.keys if not k.exists()]
    if not missing and not missing_keys:
        return
    throwaway = self_signed("stagectl-nginx-check")
    cert, key = scratch.root / ".selfsigned" / "cert.pem", scratch.root / ".selfsigned" / "key.pem"
    cert.parent.mkdir(parents=True, exist_ok=True)
    cert.write_text(throwaway.certificate)
    key.write_text(throwaway.private_key)
    for target_cert, target_key in missing:
        for source, target in ((cert, target_cert), (key, target_key)):
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
    for target_key in missing_keys:
        target_key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(key, target_key)


# --- running nginx -t ---------------------------------------------------------------------------

_VERSION = re.compile(r"nginx/(\d+)\.(\d+)\.(\d+)")
_CONF_PATH = re.compile(r"--conf-path=(\S+)")
_WHERE = re.compile(r" in (/\S+?):\d+")


def _local_nginx(nginx: str) -> tuple[tuple[int, ...], Path | None]:
    result = run([nginx, "-V"])
    version = _VERSION.search(result.output)
    conf = _CONF_PATH.search(result.output)
    conf_dir = Path(conf.group(1)).parent if conf else Path("/etc/nginx")
    return (tuple(int(v) for v in version.groups()) if version else (0, 0, 0)), conf_dir


def _copy_mount(local: Path, target: Path) -> None:
    if local.is_dir():
        shutil.copytree(local, target, dirs_exist_ok=True)
    elif local.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, target)


def check_tree(tree: Tree) -> list[Finding]:
    """`nginx -t` of a configuration tree; findings name files by their path in the container."""
    nginx = require_tool("nginx", NGINX_PACKAGE)
    version, conf_dir = _local_nginx(nginx)
    with tempfile.TemporaryDirectory(prefix="stagectl-nginx-") as tmp:
        scratch = _Scratch(Path(tmp).resolve(), conf_dir, version)
        # Shorter mount paths first, so a file mounted inside a mounted directory wins.
        for container_path, local in sorted(tree.mounts.items(), key=lambda item: len(item[0])):
            _copy_mount(Path(local), scratch.local(container_path))
        main = scratch.local(tree.main)
        if not main.is_file():
            main.parent.mkdir(parents=True, exist_ok=True)
            main.write_text(IMAGE_MAIN)
        _rewrite(main, scratch, set())
        _make_certificates(scratch)
        args = [nginx, "-t", "-p", f"{scratch.root}/", "-c", str(main)]
        if version >= (1, 19, 5):
            args += ["-e", "stderr"]  # not the compiled-in error log, which may not be writable
        result = run(args, cwd=scratch.root)
        output = result.output.replace(str(scratch.root), "")
    findings = list(scratch.notes)
    if result.returncode != 0:
        where = _WHERE.search(output)
        findings.append(Finding("nginx", where.group(1) if where else tree.main, output))
    else:
        for line in output.splitlines():
            if "[warn]" in line:
                where = _WHERE.search(line)
                findings.append(Finding("nginx", where.group(1) if where else tree.main, line, "warning"))
    return findings


# --- finding the tree of a rendered file from its stack's compose file ------------------------


def _bind_mounts(service: dict[str, Any], compose_dir: str) -> list[tuple[str, str]]:
    """(source on the server, target in the container) of a service's bind mounts."""
    mounts: list[tuple[str, str]] = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            if volume.get("type", "bind") != "bind":
                continue
            source, target = str(volume.get("source", "")), str(volume.get("target", ""))
        else:
            parts = str(volume).split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
        if source.startswith("."):
            source = str(Path(compose_dir) / source)
        if source.startswith("/") and target.startswith("/"):
            mounts.append((source.rstrip("/") or "/", target.rstrip("/") or "/"))
    return mounts


def _main_from_command(service: dict[str, Any]) -> str:
    command = service.get("command") or []
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    for flag, value in itertools.pairwise(args):
        if flag == "-c":
            return value
    return DEFAULT_MAIN


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


ComposeIndex = list[tuple[str, dict[str, Any]]]  # (stack directory on the server, service)


def compose_index(render_root: Path) -> ComposeIndex:
    """Every service of every compose file under `render_root` (the rendered server root)."""
    index: ComposeIndex = []
    for name in COMPOSE_NAMES:
        for compose_file in sorted(render_root.rglob(name)):
            try:
                data = yaml.safe_load(compose_file.read_text()) or {}
            except (OSError, yaml.YAMLError):
                continue
            compose_dir = "/" + str(compose_file.parent.relative_to(render_root))
            index += [(compose_dir, service or {}) for service in (data.get("services") or {}).values()]
    return index


def tree_for(render_root: Path, dest: str, index: ComposeIndex | None = None) -> tuple[Tree, str] | None:
    """The tree of the service that mounts `dest`, and `dest`'s path in that container.

    `render_root` is the rendered server root (`<out>/<host>`); the compose files under it are
    read as the server would run them (or taken from `index`, when the caller read them once for
    many files). The most specific mount wins (node-exporter mounts the whole host at /host,
    which is not where nginx reads its configuration).
    """
    best: tuple[int, Tree, str] | None = None
    for compose_dir, service in compose_index(render_root) if index is None else index:
        mounts = _bind_mounts(service, compose_dir)
        for source, target in mounts:
            if not _under(dest, source) or (best is not None and len(source) <= best[0]):
                continue
            rendered = {
                t: render_root / s.lstrip("/")
                for s, t in mounts
                if s != "/" and (render_root / s.lstrip("/")).exists()
            }
            container_path = target.rstrip("/") + dest[len(source.rstrip("/")):]
            best = (len(source), Tree(_main_from_command(service), rendered), container_path)
    return (best[1], best[2]) if best else None


# --- plan adapter -------------------------------------------------------------------------------

_cache: dict[str, list[Finding]] = {}
_cache_lock = threading.Lock()


def _digest(tree: Tree) -> str:
    parts: list[str | bytes] = [tree.main]
    for container_path, local in sorted(tree.mounts.items()):
        parts.append(container_path)
        root = Path(local)
        for file in tree_files(root) if root.is_dir() else [root]:
            parts += [str(file.relative_to(root)) if root.is_dir() else "", file.read_bytes()]
    return digest(*parts)


def _check_tree_cached(tree: Tree, results: ResultCache | None) -> list[Finding]:
    """Every file of a tree asks for the same nginx -t: run it once per content and nginx."""
    nginx = require_tool("nginx", NGINX_PACKAGE)
    version = tool_version("nginx", nginx, ["-V"])
    key = digest(_digest(tree), version or "")
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    stored_key = key if version and results is not None else None
    stored = results.get(stored_key) if results is not None else None
    if stored is not None:
        # Kept as (file, severity, message): only runs without an error are kept.
        findings = [Finding("nginx", c.tool, c.message, "warning" if c.status == "warning" else "info")
                    for c in stored]
    else:
        findings = check_tree(tree)
        if results is not None and not errors(findings):
            results.put(stored_key, [Cached(f.file, f.severity, f.message) for f in findings])
    with _cache_lock:
        _cache[key] = findings
    return findings


def check_file(
    file: RenderedFile, results: ResultCache | None = None, index: ComposeIndex | None = None
) -> list[Check]:
    """One rendered nginx file: the whole tree of its container is tested, and this file gets the
    findings that name it (the main file also those naming files that were not rendered).
    `index`: the compose files of the file's server root, when the caller read them once."""
    dest = file.dest
    render_root = Path(str(file.local)[: -len(dest.lstrip("/"))])
    found = tree_for(render_root, dest, index)
    if found is None:
        # No stack mounts it: a main configuration on its own, or a snippet for conf.d/.
        text = file.local.read_text(errors="replace")
        names = {s.name for s in _statements(text)}
        if {"events", "http"} & names:
            tree, own = Tree(DEFAULT_MAIN, {DEFAULT_MAIN: file.local}), DEFAULT_MAIN
        else:
            own = f"/etc/nginx/conf.d/{file.local.name}"
            tree = Tree(DEFAULT_MAIN, {own: file.local})
    else:
        tree, own = found
    try:
        findings = _check_tree_cached(tree, results)
    except ToolMissing as exc:
        return [missing_check(exc, dest)]
    rendered = set()
    for container_path, local in tree.mounts.items():
        if Path(local).is_dir():
            rendered |= {container_path + "/" + str(p.relative_to(local)) for p in Path(local).rglob("*")}
        else:
            rendered.add(container_path)
    mine = [
        f for f in findings
        if f.file == own or (own == tree.main and f.file not in rendered)
    ]
    return as_checks(mine, tool="nginx", target=dest)


def check(path: Path, *, container_path: str = DEFAULT_MAIN) -> list[Finding]:
    """`nginx -t` of one stand-alone file: a main configuration (with `events`/`http`) placed at
    `container_path`, or else a server snippet placed in the image's conf.d/."""
    names = {s.name for s in _statements(path.read_text(errors="replace"))}
    if {"events", "http"} & names:
        return check_tree(Tree(container_path, {container_path: path}))
    return check_tree(Tree(DEFAULT_MAIN, {f"/etc/nginx/conf.d/{path.name}": path}))
