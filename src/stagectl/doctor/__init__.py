"""`stagectl doctor`: the troubleshooting guide and health checks as automated checks.

Two halves, so the judgement is testable without a server:

* gathering (`run`): the read-only playbook `stagectl.staging.doctor` probes every host (SSH,
  Python, sudo, groups, `ss`, Docker, Compose, the stacks, Prometheus' targets) and writes what it
  saw, as registered task results, to one JSON file per host on this machine; DNS is resolved
  here, on the controller, through an injectable resolver;
* judging (`checks`): pure functions turn those findings (parsed by `stagectl.probes`) and the
  environment's expectations (`stagectl.expectations`) into `CheckResult`s, each failing one
  carrying its fix (`fixes`, else the known problems of `stagectl.troubleshooting`).

Nothing here prints and nothing changes a server (only the collection changes one, and doctor
only reads). `status` and `alerts` read the same probes and expectations, not doctor.
"""

from stagectl.doctor.report import CheckResult, DoctorReport
from stagectl.doctor.run import run_doctor

__all__ = ["CheckResult", "DoctorReport", "run_doctor"]
