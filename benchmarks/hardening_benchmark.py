"""Lynis hardening index of a deployed sandbox server: the score, the warnings and the
suggestions that keep it down.

    .venv/bin/python benchmarks/hardening_benchmark.py                 # a new sandbox, deployed, removed after
    .venv/bin/python benchmarks/hardening_benchmark.py --sandbox NAME  # a sandbox already deployed

A new sandbox is audited twice: after `deploy`, and after `stagectl upgrade` (the packages its
image left behind upgraded, as a real server's would be).

Needs a Docker engine (scripts/testbed-setup.sh docker). Lynis (Debian's package) is installed on
the sandbox server it audits, never on a real server. Prints figures; asserts nothing. Talks only
to the sandbox (through `docker exec`) and Debian's mirror from inside it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from stagectl.sandbox.server import default_state_dir

STAGECTL = Path(sys.executable).parent / "stagectl"


def on_server(name: str, script: str, timeout: float = 900) -> str:
    proc = subprocess.run(["docker", "exec", name, "bash", "-euo", "pipefail", "-c", script],
                          capture_output=True, text=True, timeout=timeout, check=True)
    return proc.stdout


def audit(name: str) -> None:
    started = time.monotonic()
    on_server(name, "command -v lynis >/dev/null || "
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q lynis >/dev/null")
    on_server(name, "lynis audit system --quick --no-colors --logfile /var/log/lynis.log "
                    "--report-file /var/log/lynis-report.dat >/dev/null")
    report = on_server(name, "cat /var/log/lynis-report.dat")
    print(f"lynis audit: {time.monotonic() - started:.1f}s")
    index = re.search(r"^hardening_index=(\d+)$", report, re.MULTILINE)
    print(f"hardening index: {index.group(1) if index else 'not reported'} (goal: 80 or more)")
    for kind in ("warning", "suggestion"):
        entries = re.findall(rf"^{kind}\[\]=([^|]+)\|([^|]*)\|", report, re.MULTILINE)
        print(f"{kind}s: {len(entries)}")
        for test, text in entries:
            print(f"  {test}: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", help="a sandbox already deployed (`stagectl sandbox up --deploy`)")
    args = parser.parse_args()
    if args.sandbox:
        audit(args.sandbox)
        return
    name = f"stagectl-hardening-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    try:
        subprocess.run([str(STAGECTL), "sandbox", "up", "--deploy", "--name", name, "--ssh-port", "0",
                        "--http-port", "0", "--https-port", "0"], check=True, timeout=3600)
        print(f"sandbox up --deploy: {time.monotonic() - started:.1f}s")
        audit(name)
        state = default_state_dir(name)
        started = time.monotonic()
        subprocess.run([str(STAGECTL), "upgrade", "--env", str(state / "environment"),
                        "--vault-password-file", str(state / "vault-pass")], check=True, timeout=3600)
        print(f"stagectl upgrade: {time.monotonic() - started:.1f}s")
        audit(name)
    finally:
        subprocess.run([str(STAGECTL), "sandbox", "down", "--name", name, "--remove-data"],
                       check=False, timeout=600)


if __name__ == "__main__":
    main()
