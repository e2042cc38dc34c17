"""The sandbox a benchmark measures on: started on free ports, its environment written for the demo
app (beryl3 and project2), bootstrapped and deployed cold (the time printed); removed with its data
afterwards."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stagectl.deploy import bootstrap, deploy
from stagectl.sandbox import archive, server
from stagectl.sandbox.environment import bootstrap_target, write_sandbox_environment
from stagectl.sandbox.server import SandboxInfo

DEMO_APP = Path(__file__).resolve().parents[1] / "examples" / "demo-app"


@dataclass(frozen=True)
class BenchSandbox:
    info: SandboxInfo
    #: The environment directory and its vault password file.
    root: Path
    password_file: Path
    #: A temporary directory for the benchmark's own files, deleted with the sandbox.
    state: Path


@contextmanager
def deployed_sandbox() -> Iterator[BenchSandbox]:
    images = archive.ensure_archive()
    name = f"stagectl-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="stagectl-bench-") as tmp:
        state = Path(tmp)
        try:
            info = server.up(name, 0, state_dir=state / "server", http_port=0, https_port=0,
                             archive_dir=images.path.parent)
            root, password_file = state / "environment", state / "vault-pass"
            write_sandbox_environment(root, info, password_file, DEMO_APP, preload_archives=[images.server_path])
            target = bootstrap_target(info)
            if not bootstrap(root, password_file, target.login, connect_key=target.connect_key).ok:
                raise SystemExit("bootstrap failed")
            started = time.monotonic()
            if not deploy(root, password_file).run.ok:
                raise SystemExit("cold deploy failed")
            print(f"cold deploy: {time.monotonic() - started:.1f}s", flush=True)
            yield BenchSandbox(info, root, password_file, state)
        finally:
            server.down(name, remove_data=True)
