"""Upstream validators for rendered files, one module per family:

- `prometheus`: promtool (configuration, rules, web configuration) and amtool (Alertmanager);
- `nginx`: `nginx -t` on a scratch copy with the container's paths and throwaway certificates;
- `compose`: `docker compose config -q` and stagectl's policy for every service;
- `static`: structural checks where the real binary is not obtainable (Loki, Alloy, Grafana) and
  for small formats (systemd units, Dockerfiles, .env, JSON, YAML).

Each module has typed functions taking paths and returning `list[Finding]` (raising
`stagectl.errors.ToolMissing` when its tool is absent), and `check_*_file(RenderedFile)`
adapters returning `stagectl.validate.Check`s for `stagectl plan`.
"""

from stagectl.validators.base import Finding, Severity, errors

__all__ = ["Finding", "Severity", "errors"]
