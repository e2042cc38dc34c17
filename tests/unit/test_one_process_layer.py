"""Programs are started in one place, `stagectl.process`: the timeout, missing-tool and
interrupt behaviour every caller relies on lives there and nowhere else."""

from __future__ import annotations

from pathlib import Path

import stagectl

PACKAGE = Path(stagectl.__file__).parent


def test_only_the_process_module_uses_subprocess_or_sleeps_in_a_loop() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): word
        for path in PACKAGE.rglob("*.py")
        if "ansible_collections" not in path.parts and path.name != "process.py"
        for word in ("import subprocess", "import fcntl", "time.sleep(")
        if word in path.read_text()
    }
    assert offenders == {}
