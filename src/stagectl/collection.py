"""Where the shipped Ansible collection `stagectl.staging` lives, and how Ansible is pointed at it."""

from __future__ import annotations

import os
from pathlib import Path

import ansible_mitogen

from stagectl.errors import AnsibleSettingInvalid

COLLECTION = "stagectl.staging"
VARS_PLUGINS_ENABLED = "host_group_vars,stagectl.staging.environment"
SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=300s"
# Mitogen's linear strategy: Ansible's own order of tasks, but every module runs in one Python
# interpreter kept open on the host for the whole run instead of a new one per task. An operator
# who meets a Mitogen problem sets ANSIBLE_STRATEGY=linear (Ansible's own) in their environment.
STRATEGY = "mitogen_linear"
STRATEGIES = ("mitogen_linear", "mitogen_free", "mitogen_host_pinned", "linear", "free", "host_pinned", "debug")


def collections_path() -> Path:
    """The directory holding `ansible_collections/` (inside the installed package)."""
    return Path(__file__).resolve().parent


def collection_root() -> Path:
    return collections_path() / "ansible_collections" / "stagectl" / "staging"


def playbook(name: str) -> Path:
    return collection_root() / "playbooks" / f"{name}.yml"


def ansible_env() -> dict[str, str]:
    """Environment variables every Ansible run of stagectl gets."""
    strategy = os.environ.get("ANSIBLE_STRATEGY") or STRATEGY
    if strategy not in STRATEGIES:
        raise AnsibleSettingInvalid(
            f"ANSIBLE_STRATEGY={strategy} (set in your shell) names no strategy stagectl can run with",
            hint=f"unset it (stagectl runs {STRATEGY}) or set it to one of: {', '.join(STRATEGIES)}",
        )
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
        "ANSIBLE_STRATEGY_PLUGINS": str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"),
        "ANSIBLE_STRATEGY": strategy,
    }
