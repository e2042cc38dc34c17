"""Test-bed images: Debian-built stand-ins for the official images, and the sandbox server.

See :mod:`stagectl.sandbox.images.builder`; run ``python -m stagectl.sandbox.images --help``.
"""

from stagectl.sandbox.images.builder import (
    BASES,
    IMAGES,
    NO_STANDIN,
    SANDBOX_RUN_OPTIONS,
    SANDBOX_SERVER,
    STANDINS,
    BaseImage,
    BuildError,
    BuildResult,
    ImageBuilder,
    ImageSpec,
    docker_available,
    find_standin,
)

__all__ = [
    "BASES",
    "IMAGES",
    "NO_STANDIN",
    "SANDBOX_RUN_OPTIONS",
    "SANDBOX_SERVER",
    "STANDINS",
    "BaseImage",
    "BuildError",
    "BuildResult",
    "ImageBuilder",
    "ImageSpec",
    "docker_available",
    "find_standin",
]
