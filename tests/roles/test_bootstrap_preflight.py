"""The bootstrap preflight refuses bad inputs with a clear message, before touching any host.

The inventory points at 127.0.0.1:9, where nothing listens: these runs must fail on the
controller, in the preflight, without ever trying to connect.
"""

from __future__ import annotations

import json

import pytest

from stagectl import collection

from .conftest import Workspace
from .sandbox import run_playbook, set_host

CLOSED_PORT = 9


def bootstrap(ws: Workspace, *extra: str):
    set_host(ws.env_root, CLOSED_PORT, ws.ansible_key)
    return run_playbook(ws.env_root, ws.vault_password_file, collection.playbook("bootstrap"),
                        "-e", "ansible_user=root", *extra, timeout=120)


def public_key(value: str) -> list[str]:
    """-e as JSON: key=value would split the value at its spaces."""
    return ["-e", json.dumps({"bootstrap_public_key": value})]


def assert_refused_in_preflight(run, message: str) -> None:
    assert run.returncode != 0, run.explain()
    assert message in run.output, run.explain()
    # Refused on the controller: no connection was ever tried.
    assert "UNREACHABLE" not in run.output, run.explain()
    assert "Read /etc/os-release" not in run.output, run.explain()


def test_missing_public_key_is_refused(workspace: Workspace) -> None:
    # No -e bootstrap_public_key and no .pub beside the inventory's private key.
    workspace.ansible_key.with_suffix(".pub").unlink()
    run = bootstrap(workspace)
    assert_refused_in_preflight(run, "bootstrap_public_key is empty")
    assert "ssh-keygen -t ed25519" in run.output


def test_public_key_is_read_from_the_pub_file(workspace: Workspace) -> None:
    # The .pub beside the key is used: the run gets past the input checks and only then fails to
    # reach the (closed) port.
    run = bootstrap(workspace)
    assert run.returncode != 0
    assert "bootstrap_public_key is empty" not in run.output, run.explain()
    assert "UNREACHABLE" in run.output or "Connection refused" in run.output, run.explain()


def test_private_key_is_refused_and_never_echoed(workspace: Workspace) -> None:
    private = workspace.ansible_key.read_text()
    run = bootstrap(workspace, *public_key(private))
    assert_refused_in_preflight(run, "bootstrap_public_key holds a PRIVATE key")
    body = "".join(private.strip().splitlines()[1:-1])
    assert body[:40] not in run.output.replace("\n", "")


@pytest.mark.parametrize(
    "key",
    [
        "AAAAC3NzaC1lZDI1NTE5AAAAIOq3 ansible@staging",      # no type
        "ssh-ed25519 not-base64!! ansible@staging",          # bad blob
        "ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIOq3",              # unknown type
        "ssh-ed25519 AAAA\nssh-ed25519 AAAB",                # two lines
    ],
)
def test_malformed_public_key_is_refused(workspace: Workspace, key: str) -> None:
    run = bootstrap(workspace, *public_key(key))
    assert_refused_in_preflight(run, "bootstrap_public_key is not an OpenSSH public key")


def test_public_key_of_another_pair_is_refused(workspace: Workspace) -> None:
    other = workspace.root_key.with_suffix(".pub").read_text().strip()
    run = bootstrap(workspace, *public_key(other))
    assert_refused_in_preflight(run, "does not match bootstrap_public_key")


def test_root_as_bootstrap_user_is_refused(workspace: Workspace) -> None:
    run = bootstrap(workspace, "-e", "bootstrap_user=root")
    assert_refused_in_preflight(run, "bootstrap_user 'root' is not usable")
