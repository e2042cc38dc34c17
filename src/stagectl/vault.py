"""The ansible-vault file: generating secrets, encrypting, decrypting. Nothing here prints."""

from __future__ import annotations

import binascii
import os
import secrets
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from ansible.parsing.vault import AnsibleVaultError, AnsibleVaultFormatError, VaultLib, VaultSecret

from stagectl import yamlfile
from stagectl.errors import VaultError

VAULT_ID = "default"
# Without characters that need quoting in a URL, a .env file or a shell: the passwords end up in
# DATABASE_URL and REDIS_URL.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
SECRET_KEY_ALPHABET = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"


def random_password(length: int = 32) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def random_secret_key() -> str:
    return "".join(secrets.choice(SECRET_KEY_ALPHABET) for _ in range(64))


def project_secrets() -> dict[str, str]:
    return {
        "postgres_password": random_password(),
        "postgres_monitor_password": random_password(),
        "redis_password": random_password(),
        "django_secret_key": random_secret_key(),
    }


def new_vault(project_names: list[str]) -> dict[str, Any]:
    prometheus_password = random_password()
    return {
        "vault_grafana_admin_password": random_password(),
        # Grafana encrypts the secrets it stores (datasource passwords) with this key.
        "vault_grafana_secret_key": random_password(40),
        "vault_prometheus_password": prometheus_password,
        # Prometheus' web config takes a bcrypt hash; kept beside the password because bcrypt salts
        # are random and a re-hash on every run would make every deploy "changed".
        "vault_prometheus_password_bcrypt": bcrypt_hash(prometheus_password),
        "vault_projects": {name: project_secrets() for name in project_names},
    }


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()


def bcrypt_matches(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def fill_missing(
    vault: dict[str, Any], project_names: list[str], app_secrets: dict[str, list[str]] | None = None
) -> list[str]:
    """Add secrets for projects that have none, and a value for each name a project's
    `app.secrets` lists (`app_secrets`: project -> names); never change an existing one.
    Returns what was added."""
    added: list[str] = []
    per_project = vault.setdefault("vault_projects", {})
    for name in project_names:
        if name not in per_project:
            per_project[name] = project_secrets()
            added.append(f"vault_projects.{name}")
        if "postgres_monitor_password" not in per_project[name]:
            per_project[name]["postgres_monitor_password"] = random_password()
            added.append(f"vault_projects.{name}.postgres_monitor_password")
        values = per_project[name].setdefault("app_secrets", {})
        for secret in (app_secrets or {}).get(name, []):
            if secret not in values:
                # Letters and digits: the value lands in a .env file unquoted.
                values[secret] = random_password(50)
                added.append(f"vault_projects.{name}.app_secrets.{secret}")
        if not values:
            del per_project[name]["app_secrets"]
    makers: tuple[tuple[str, Callable[[], str]], ...] = (
        ("vault_grafana_admin_password", random_password),
        ("vault_grafana_secret_key", lambda: random_password(40)),
        ("vault_prometheus_password", random_password),
    )
    for key, make in makers:
        if key not in vault:
            vault[key] = make()
            added.append(key)
    if not bcrypt_matches(vault["vault_prometheus_password"], vault.get("vault_prometheus_password_bcrypt", "")):
        vault["vault_prometheus_password_bcrypt"] = bcrypt_hash(vault["vault_prometheus_password"])
        added.append("vault_prometheus_password_bcrypt")
    return added


def new_password_file(path: Path) -> None:
    """Create a vault password file readable only by its owner."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")


def read_password_file(path: Path) -> bytes:
    try:
        password = path.read_bytes().strip()
    except FileNotFoundError:
        raise VaultError(
            f"vault password file {path} does not exist",
            hint="pass --vault-password-file with the file `stagectl init` created, "
            "or set STAGECTL_VAULT_PASSWORD_FILE",
        ) from None
    except OSError as exc:
        raise VaultError(f"cannot read vault password file {path}: {exc.strerror}") from None
    if not password:
        raise VaultError(f"vault password file {path} is empty")
    return password


def _vault_lib(password: bytes) -> VaultLib:
    return VaultLib([(VAULT_ID, VaultSecret(password))])


def encrypt(data: dict[str, Any], password: bytes) -> bytes:
    plain = yaml.safe_dump(data, sort_keys=True, default_flow_style=False).encode()
    cipher: bytes = _vault_lib(password).encrypt(plain)
    return cipher


def write_vault(path: Path, data: dict[str, Any], password: bytes) -> None:
    """Encrypt and write atomically, mode 0600, so a crash never leaves a half-written vault."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(encrypt(data, password))
    tmp.replace(path)


def decrypt(path: Path, password: bytes) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise VaultError(
            f"{path} does not exist",
            hint="the vault holds every secret; restore it, or run `stagectl init` for a new environment",
        ) from None
    damage = vault_damage(raw)
    if damage:
        raise VaultError(
            f"{path} is damaged: {damage}",
            hint="restore it from version control or a backup (the vault password is not the "
            "problem); after a merge, take one side of the conflict whole",
        )
    lib = _vault_lib(password)
    if not lib.is_encrypted(raw):
        raise VaultError(
            f"{path} is not encrypted with ansible-vault",
            hint=f"encrypt it: ansible-vault encrypt {path}",
        )
    try:
        plain = lib.decrypt(raw)
    except AnsibleVaultFormatError:
        raise VaultError(
            f"{path} is damaged: its encrypted text cannot be read",
            hint="restore it from version control or a backup (the vault password is not the problem)",
        ) from None
    except AnsibleVaultError:
        raise VaultError(
            f"cannot decrypt {path} with the given vault password file",
            hint="check that --vault-password-file is the file `stagectl init` wrote for this environment",
        ) from None
    try:
        return yamlfile.load(plain) or {}
    except yaml.YAMLError as exc:
        where, reason = yamlfile.describe(exc)
        # The decrypted text is secret: name the line, never quote it.
        raise VaultError(
            f"{path} decrypts, but its content is not valid YAML ({where}: {reason})",
            hint="fix it with `ansible-vault edit` and the same password file",
        ) from None


CONFLICT_MARKERS = (b"<<<<<<<", b"=======", b">>>>>>>")
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def vault_damage(raw: bytes) -> str:
    """Why an ansible-vault file cannot be whole, without the password; "" when it looks whole.

    A truncated or merged vault fails its HMAC exactly like a wrong password would, so the
    structure is checked first: a damaged file must not be blamed on the password.
    """
    lines = raw.splitlines()
    if any(line.startswith(CONFLICT_MARKERS) for line in lines):
        return "it holds git conflict markers (<<<<<<< ======= >>>>>>>)"
    if not lines or not lines[0].startswith(b"$ANSIBLE_VAULT;"):
        return ""  # not a vault at all: the caller says so
    body = b"".join(line.strip() for line in lines[1:])
    if not body:
        return "it has the ansible-vault header but no encrypted text (truncated)"
    if not set(body) <= HEX_DIGITS or len(body) % 2:
        return "its encrypted text is cut off or altered (not whole hexadecimal)"
    parts = binascii.unhexlify(body).split(b"\n")
    if len(parts) != 3 or len(parts[0]) != 64 or len(parts[1]) != 64:
        return "its encrypted text is cut off or altered (salt, checksum or data missing)"
    cipher = parts[2]
    if not cipher or len(cipher) % 32 or not set(cipher) <= HEX_DIGITS:
        return "its encrypted text is cut off (truncated)"
    return ""
