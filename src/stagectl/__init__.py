"""stagectl: one declarative environment to a running, monitored, backed-up Docker staging server."""

__version__ = "0.1.0"
