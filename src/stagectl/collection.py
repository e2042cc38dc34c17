"""Where the shipped Ansible collection `stagectl.staging` lives, and how Ansible is pointed at it."""

from __future__ import annotations

from pathlib import Path

COLLECTION = "stagectl.staging"
VARS_PLUGINS_ENABLED = "host_group_vars,stagectl.staging.environment"
SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=300s"


def collections_path() -> Path:
    """The directory holding `ansible_collections/` (inside the installed package)."""
    return Path(__file__).resolve().parent


def collection_root() -> Path:
    return collections_path() / "ansible_collections" / "stagectl" / "staging"


def playbook(name: str) -> Path:
    return collection_root() / "playbooks" / f"{name}.yml"


def ansible_env() -> dict[str, str]:
    """Environment variables every Ansible run of stagectl gets."""
    return {
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path()),
        "ANSIBLE_VARS_ENABLED": VARS_PLUGINS_ENABLED,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        # One SSH round trip per task instead of several (requires no `requiretty`; bootstrap's
        # sudoers entry has none). Roughly a third off a no-op deploy.
        "ANSIBLE_PIPELINING": "1",
        # One SSH connection for the whole run: later tasks reuse the master connection instead
        # of a new handshake each (Ansible's default keeps it only 60s, less than a long build).
        "ANSIBLE_SSH_ARGS": SSH_ARGS,
    }
