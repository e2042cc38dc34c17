"""SSH key pairs, made and read with `cryptography` (no ssh-keygen process, no temporary files):
the sandbox's root and ansible keys, the sandbox backup target's key, and doctor's check of the
key an environment names."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

KeyState = Literal["ok", "missing", "unset", "passphrase", "unreadable"]


@dataclass(frozen=True)
class KeyPair:
    """An unencrypted OpenSSH private key and its authorized_keys line (`TYPE KEY COMMENT`)."""

    private: str
    public: str


def new_key_pair(comment: str) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    return KeyPair(private, _public_line(key, comment))


def public_line(private_key: Path, comment: str) -> str:
    """The authorized_keys line of an unencrypted private key file."""
    return _public_line(_load(private_key.read_bytes()), comment)


def write_private_key(path: Path, private: str) -> None:
    """Write a private key readable by its owner only, from its first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private)


def inspect_key(path: str) -> KeyState:
    """What is wrong with the private key at PATH, if anything. A key that needs a passphrase
    cannot be used by unattended Ansible runs."""
    if not path:
        return "unset"
    key = Path(path).expanduser()
    if not key.is_file():
        return "missing"
    try:
        _load(key.read_bytes())
    except TypeError:  # "Password was not given but private key is encrypted"
        return "passphrase"
    except UnsupportedAlgorithm:
        # A hardware-backed key (sk-ssh-ed25519) is not for cryptography to judge; ssh uses it.
        return "ok"
    except (ValueError, OSError):
        return "unreadable"
    return "ok"


def _load(data: bytes) -> PrivateKeyTypes:
    # OpenSSH's own format first (ssh-keygen's default), then PEM (older RSA keys).
    if b"BEGIN OPENSSH PRIVATE KEY" in data:
        return serialization.load_ssh_private_key(data, password=None)
    return serialization.load_pem_private_key(data, password=None)


def _public_line(key: PrivateKeyTypes, comment: str) -> str:
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode()} {comment}".strip()
