"""Structural checks for files whose own tool cannot run here.

Loki, Grafana Alloy and Grafana have no Debian or PyPI package and their Go modules are not
served on the test bed, so their files are checked in Python: they parse, the keys that make
them work are present, and values the model owns (retention, domains) are the model's. The same
module covers the small formats of other roles (systemd units, Dockerfiles, .env files, JSON).

`check_file` dispatches on the manifest kind; the typed functions can be called directly with the
expected values, as the tests do.
"""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from stagectl.derived import ADMIN_USER
from stagectl.validators.base import Finding, as_checks

if TYPE_CHECKING:
    from stagectl.render import RenderedFile
    from stagectl.validate import Check


def _finding(path: Path, message: str, tool: str = "static") -> Finding:
    return Finding(tool, str(path), message)


# --- YAML and JSON ------------------------------------------------------------------------------


def _load_yaml(path: Path, findings: list[Finding]) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        findings.append(_finding(path, f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}", "yaml"))
        return None


def check_yaml(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    _load_yaml(path, findings)
    return findings


def check_json(path: Path) -> list[Finding]:
    try:
        json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [_finding(path, f"not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}", "json")]
    return []


def _get(data: Any, dotted: str) -> Any:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _require(data: Any, path: Path, keys: list[str], tool: str) -> list[Finding]:
    return [_finding(path, f"required key {key} is missing", tool) for key in keys if _get(data, key) is None]


# --- Loki ---------------------------------------------------------------------------------------


def check_loki(path: Path, *, retention: str | None = None) -> list[Finding]:
    """Single-binary Loki on the filesystem: tsdb/v13 schema, compactor retention on, retention
    equal to the model's (when given)."""
    findings: list[Finding] = []
    data = _load_yaml(path, findings)
    if findings:
        return findings
    if not isinstance(data, dict):
        return [_finding(path, "not a Loki configuration (expected a mapping)", "loki")]
    findings += _require(data, path, [
        "server.http_listen_port", "common.path_prefix", "common.storage.filesystem.chunks_directory",
        "schema_config.configs", "compactor.working_directory", "limits_config.retention_period",
    ], "loki")
    schemas = _get(data, "schema_config.configs") or []
    if not schemas or not all(isinstance(s, dict) for s in schemas):
        findings.append(_finding(path, "schema_config.configs must list at least one schema", "loki"))
    else:
        latest = schemas[-1]
        if latest.get("store") != "tsdb" or latest.get("schema") != "v13":
            findings.append(_finding(path, "the newest schema must be store: tsdb, schema: v13 (what Loki 3 needs for retention and structured metadata)", "loki"))
        if latest.get("object_store") != "filesystem":
            findings.append(_finding(path, "object_store must be filesystem (local storage)", "loki"))
        froms = [str(s.get("from")) for s in schemas]
        if froms != sorted(froms):
            findings.append(_finding(path, "schema_config.configs must be ordered by `from`", "loki"))
    if _get(data, "compactor.retention_enabled") is not True:
        findings.append(_finding(path, "compactor.retention_enabled must be true, or nothing is ever deleted", "loki"))
    elif not _get(data, "compactor.delete_request_store"):
        findings.append(_finding(path, "compactor.delete_request_store is required when retention is enabled", "loki"))
    actual = _get(data, "limits_config.retention_period")
    if retention is not None and actual is not None and str(actual) != retention:
        findings.append(_finding(path, f"limits_config.retention_period is {actual}, the environment says {retention}", "loki"))
    return findings


# --- Grafana ------------------------------------------------------------------------------------


def _read_ini(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(comment_prefixes=("#", ";"), inline_comment_prefixes=None,
                                          strict=True, interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    return parser


def check_grafana_ini(path: Path, *, domain: str | None = None) -> list[Finding]:
    """grafana.ini: parses as Grafana's ini; admin is `admin` with no password written in it;
    no anonymous access, no sign-up; domain and root_url agree (and equal `domain` if given)."""
    try:
        ini = _read_ini(path)
    except configparser.Error as exc:
        return [_finding(path, f"not a valid ini file: {exc}", "grafana")]
    findings: list[Finding] = []

    def value(section: str, key: str) -> str | None:
        return ini.get(section, key, fallback=None)

    if value("security", "admin_user") != ADMIN_USER:
        findings.append(_finding(path, f"[security] admin_user must be {ADMIN_USER}", "grafana"))
    if value("security", "admin_password") is not None:
        findings.append(_finding(path, "[security] admin_password must not be written here: pass it through GF_SECURITY_ADMIN_PASSWORD__FILE", "grafana"))
    if (value("auth.anonymous", "enabled") or "false").lower() != "false":
        findings.append(_finding(path, "[auth.anonymous] enabled must be false", "grafana"))
    if (value("users", "allow_sign_up") or "").lower() != "false":
        findings.append(_finding(path, "[users] allow_sign_up must be false", "grafana"))
    server_domain, root_url = value("server", "domain"), value("server", "root_url")
    if not server_domain or not root_url:
        findings.append(_finding(path, "[server] domain and root_url are required behind the reverse proxy", "grafana"))
    else:
        if f"//{server_domain}" not in root_url:
            findings.append(_finding(path, f"[server] root_url {root_url} does not use domain {server_domain}", "grafana"))
        if domain is not None and server_domain != domain:
            findings.append(_finding(path, f"[server] domain is {server_domain}, the environment says {domain}", "grafana"))
    return findings


def check_grafana_provisioning(path: Path) -> list[Finding]:
    """A provisioning file: apiVersion 1 and either data sources (name, type, uid each, uids
    unique, one default) or dashboard providers (name, options.path each, names unique)."""
    findings: list[Finding] = []
    data = _load_yaml(path, findings)
    if findings:
        return findings
    if not isinstance(data, dict) or data.get("apiVersion") != 1:
        return [_finding(path, "a provisioning file needs `apiVersion: 1`", "grafana")]
    if "datasources" in data:
        sources = data["datasources"] or []
        for index, source in enumerate(sources):
            for key in ("name", "type", "uid"):
                if not isinstance(source, dict) or not source.get(key):
                    findings.append(_finding(path, f"datasources[{index}] has no {key}", "grafana"))
        uids = [s.get("uid") for s in sources if isinstance(s, dict)]
        if len(uids) != len(set(uids)):
            findings.append(_finding(path, "data source uids must be unique", "grafana"))
        if sum(1 for s in sources if isinstance(s, dict) and s.get("isDefault")) > 1:
            findings.append(_finding(path, "more than one data source has isDefault: true", "grafana"))
    elif "providers" in data:
        providers = data["providers"] or []
        for index, provider in enumerate(providers):
            if not isinstance(provider, dict) or not provider.get("name") or not _get(provider, "options.path"):
                findings.append(_finding(path, f"providers[{index}] needs a name and options.path", "grafana"))
        names = [p.get("name") for p in providers if isinstance(p, dict)]
        if len(names) != len(set(names)):
            findings.append(_finding(path, "dashboard provider names must be unique", "grafana"))
    elif not any(k in data for k in ("apps", "plugins", "contactPoints", "groups", "policies", "templates", "muteTimes", "notifiers")):
        findings.append(_finding(path, "neither datasources nor providers (nor another provisioning section)", "grafana"))
    return findings


# --- blackbox exporter --------------------------------------------------------------------------

BLACKBOX_PROBERS = {"http", "tcp", "icmp", "dns", "grpc", "unix"}


def check_blackbox(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    data = _load_yaml(path, findings)
    if findings:
        return findings
    modules = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(modules, dict) or not modules:
        return [_finding(path, "no modules", "blackbox")]
    for name, module in modules.items():
        prober = module.get("prober") if isinstance(module, dict) else None
        if prober not in BLACKBOX_PROBERS:
            findings.append(_finding(path, f"module {name}: prober must be one of {', '.join(sorted(BLACKBOX_PROBERS))}", "blackbox"))
    return findings


# --- Grafana Alloy ------------------------------------------------------------------------------

# Namespaces of Alloy components: a dotted name starting with one of these in an expression
# refers to a component's export and must name a defined component.
ALLOY_COMPONENT_NAMESPACES = {
    "beyla", "database_observability", "discovery", "faro", "local", "loki", "mimir", "otelcol",
    "prometheus", "pyroscope", "remote",
}
# Top-level blocks that are configuration, not components.
ALLOY_CONFIG_BLOCKS = {
    "logging", "tracing", "livedebugging", "http", "remotecfg", "argument", "export", "declare",
    "import.file", "import.git", "import.http", "import.string", "foreach", "labelstore",
}

_ALLOY_TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?\*/)
      | (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
      | (?P<open>[{\[(])
      | (?P<close>[}\])])
      | (?P<unterminated>["`])
      | (?P<other>[^\sA-Za-z_"`{}\[\]()/]+|/)
      | (?P<space>\s+)
    """,
    re.VERBOSE | re.DOTALL,
)


def _alloy_tokens(text: str) -> Iterator[tuple[str, str, int]]:
    for match in _ALLOY_TOKEN.finditer(text):
        kind = match.lastgroup or ""
        if kind not in ("comment", "space"):
            yield kind, match.group(), text.count("\n", 0, match.start()) + 1


def check_alloy(path: Path) -> list[Finding]:
    """Alloy syntax, structurally: strings terminated, brackets balanced, and every reference to a
    component export (`loki.write.default.receiver`) names a component defined in the file."""
    text = path.read_text()
    findings: list[Finding] = []
    tokens = list(_alloy_tokens(text))
    stack: list[tuple[str, int]] = []
    pairs = {"}": "{", "]": "[", ")": "("}
    defined: set[str] = set()
    references: list[tuple[str, int]] = []
    for index, (kind, value, line) in enumerate(tokens):
        if kind == "unterminated":
            findings.append(_finding(path, f"line {line}: unterminated string", "alloy"))
            return findings
        if kind == "open":
            # A top-level block header: `name "label" {` or `name {`.
            if value == "{" and not stack:
                header = tokens[max(0, index - 2):index]
                if len(header) == 2 and header[0][0] == "ident" and header[1][0] == "string":
                    defined.add(f"{header[0][1]}.{json.loads(header[1][1])}")
                elif header and header[-1][0] == "ident" and header[-1][1] not in ALLOY_CONFIG_BLOCKS:
                    findings.append(_finding(path, f"line {line}: component {header[-1][1]} needs a label", "alloy"))
            stack.append((value, line))
        elif kind == "close":
            if not stack or stack[-1][0] != pairs[value]:
                findings.append(_finding(path, f"line {line}: unbalanced '{value}'", "alloy"))
                return findings
            stack.pop()
        elif kind == "ident" and stack and "." in value:
            following = tokens[index + 1] if index + 1 < len(tokens) else ("", "", 0)
            is_block = following[0] == "open" and following[1] == "{" or following[0] == "string"
            if value.split(".")[0] in ALLOY_COMPONENT_NAMESPACES and not is_block:
                references.append((value, line))
    for value, line in stack:
        findings.append(_finding(path, f"line {line}: '{value}' is never closed", "alloy"))
    for reference, line in references:
        if not any(reference.startswith(component + ".") for component in defined):
            findings.append(_finding(path, f"line {line}: {reference} refers to a component that is not defined", "alloy"))
    return findings


# --- small formats of other roles ---------------------------------------------------------------

SYSTEMD_SECTIONS = {"Unit", "Service", "Timer", "Install", "Socket", "Path", "Mount", "Journal"}


def check_systemd(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    section = None
    sections: set[str] = set()
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                findings.append(_finding(path, f"line {number}: malformed section header", "systemd"))
                continue
            section = line[1:-1]
            sections.add(section)
            if section not in SYSTEMD_SECTIONS and not section.startswith("X-"):
                findings.append(_finding(path, f"line {number}: unknown section [{section}]", "systemd"))
        elif section is None:
            findings.append(_finding(path, f"line {number}: setting outside a section", "systemd"))
        elif "=" not in line and not raw.rstrip().endswith("\\"):
            findings.append(_finding(path, f"line {number}: expected Key=Value", "systemd"))
    if path.suffix in (".service", ".timer", ".socket", ".path", ".mount"):
        own = path.suffix[1:].capitalize()
        if own not in sections:
            findings.append(_finding(path, f"a {path.suffix} unit needs a [{own}] section", "systemd"))
    return findings


DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER",
}


def check_dockerfile(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    seen_from = False
    continued = False
    heredoc: str | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if heredoc is not None:
            if line == heredoc:
                heredoc = None
            continue
        if continued:
            continued = raw.rstrip().endswith("\\")
            continue
        if not line or line.startswith("#"):
            continue
        instruction = line.split(None, 1)[0].upper()
        if instruction not in DOCKERFILE_INSTRUCTIONS:
            findings.append(_finding(path, f"line {number}: unknown instruction {instruction}", "dockerfile"))
        elif instruction == "FROM":
            seen_from = True
        elif instruction != "ARG" and not seen_from:
            findings.append(_finding(path, f"line {number}: {instruction} before the first FROM", "dockerfile"))
        marker = re.search(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?", line)
        if marker and instruction in ("RUN", "COPY"):
            heredoc = marker.group(1)
        continued = raw.rstrip().endswith("\\")
    if not seen_from:
        findings.append(_finding(path, "no FROM instruction", "dockerfile"))
    return findings


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_env(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, _ = line.removeprefix("export ").partition("=")
        if not sep or not _ENV_NAME.match(name):
            findings.append(_finding(path, f"line {number}: expected NAME=value", "env"))
        elif name in seen:
            findings.append(_finding(path, f"line {number}: {name} is already set on line {seen[name]}", "env"))
        else:
            seen[name] = number
    return findings


# --- plan adapter -------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[Path], list[Finding]]] = {
    "loki": check_loki,
    "alloy": check_alloy,
    "grafana_ini": check_grafana_ini,
    "grafana_provisioning": check_grafana_provisioning,
    "blackbox": check_blackbox,
    "systemd": check_systemd,
    "dockerfile": check_dockerfile,
    "env": check_env,
    "json": check_json,
    "yaml": check_yaml,
}


def check_file(file: RenderedFile) -> list[Check]:
    check = CHECKS.get(file.kind)
    if check is None:
        from stagectl.validate import Check

        return [Check("static", file.dest, "failed", f"no static check for kind '{file.kind}'")]
    return as_checks(check(file.local), tool=f"static ({file.kind})", target=file.dest)
