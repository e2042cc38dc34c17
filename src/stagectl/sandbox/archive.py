"""The stand-in images as one `docker save` archive, for a sandbox server that cannot pull.

No registry is reachable on the test bed, so the sandbox's inner Docker gets
its images the way an air-gapped server would: the archive directory is mounted read-only into the
sandbox at /opt/stagectl-images, the environment lists the archive in `docker.preload_archives`,
and the real `common` role runs `docker load` on it once Docker is installed.

The file name carries a key of the images' content-keyed references and image IDs, so an archive
is written once and reused until a stand-in changes; writing goes through a temporary file and a
rename, so a file with the final name is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from filelock import FileLock

from stagectl.sandbox import docker_cli
from stagectl.sandbox.errors import ArchiveError, DockerCommandFailed
from stagectl.sandbox.images.builder import STANDINS, BuildError, ImageBuilder

Progress = Callable[[str], None]

#: Where the archive directory appears inside the sandbox server (mounted read-only).
SERVER_ARCHIVE_DIR = "/opt/stagectl-images"
ARCHIVE_DIR_ENV = "STAGECTL_SANDBOX_ARCHIVE_DIR"
PREFIX = "standins-"
SAVE_TIMEOUT = 1800.0


@dataclass(frozen=True)
class ImageArchive:
    path: Path
    #: The same file as seen inside the sandbox: what `docker.preload_archives` lists.
    server_path: str
    #: The content-keyed references it holds (what the sandbox environment's images point at).
    images: tuple[str, ...]
    size_bytes: int
    status: Literal["saved", "cached"]
    #: Time spent in `docker save` (0 when cached) and in building or finding the stand-ins.
    save_seconds: float
    build_seconds: float
    #: Archives of older stand-ins removed from the directory.
    removed: tuple[Path, ...] = ()


def default_archive_dir() -> Path:
    """$STAGECTL_SANDBOX_ARCHIVE_DIR, else ~/.cache/stagectl/images: shared by every sandbox of the
    user (the archive is large and the same for all of them)."""
    explicit = os.environ.get(ARCHIVE_DIR_ENV)
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "stagectl" / "images"


def server_path(archive: Path) -> str:
    return f"{SERVER_ARCHIVE_DIR}/{archive.name}"


def archive_name(refs_and_ids: Sequence[tuple[str, str]]) -> str:
    """standins-<key>.tar, the key hashing references and image IDs: a forced rebuild keeps a
    reference but changes the ID, and must not reuse the old archive."""
    blob = json.dumps(sorted(refs_and_ids), separators=(",", ":")).encode()
    return f"{PREFIX}{hashlib.sha256(blob).hexdigest()[:16]}.tar"


def _dir_lock(directory: Path) -> FileLock:
    """One writer per directory: parallel `sandbox up`s or test workers save once."""
    return FileLock(directory / ".lock")


def _build_standins(builder: ImageBuilder, names: Sequence[str]) -> list[str]:
    try:
        builder.build(list(names))
    except BuildError as exc:
        raise ArchiveError(
            f"cannot build the stand-in images: {exc}",
            hint="run `scripts/testbed-setup.sh validators docker` (debootstrap, Docker) first",
        ) from None
    return [builder.ref(name) for name in names]


def _save(refs: Sequence[str], target: Path, on_progress: Progress) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    on_progress(f"saving {len(refs)} stand-in images to {target}")
    try:
        docker_cli.run("save", "-o", str(tmp), *refs, timeout=SAVE_TIMEOUT)
    except DockerCommandFailed as exc:
        tmp.unlink(missing_ok=True)
        full = "no space left" in exc.stderr.lower()
        raise ArchiveError(
            f"docker save to {target.parent} failed: {exc.stderr.strip() or exc}",
            hint=f"free disk space in {target.parent}, or set {ARCHIVE_DIR_ENV} to another directory"
            if full
            else "",
        ) from None
    # Root inside the sandbox reads it whatever the mode; 0644 lets other users inspect it here.
    tmp.chmod(0o644)
    tmp.replace(target)


def _prune(directory: Path, keep: Path) -> tuple[Path, ...]:
    """Older archives are dead weight (about 1 GB each); leftovers of interrupted saves too
    (we hold the lock, so no save is running)."""
    removed: list[Path] = []
    for path in directory.iterdir():
        stale_archive = path.name.startswith(PREFIX) and path.name.endswith(".tar") and path != keep
        stale_tmp = path.name.startswith(f".{PREFIX}") and path.name.endswith(".tmp")
        if stale_archive or stale_tmp:
            path.unlink(missing_ok=True)
            removed.append(path)
    return tuple(removed)


def ensure_archive(
    archive_dir: Path | None = None,
    on_progress: Progress | None = None,
    *,
    builder: ImageBuilder | None = None,
    names: Sequence[str] | None = None,
    prune: bool = True,
) -> ImageArchive:
    """Build the stand-ins when missing (cached by content key), then save them into one archive
    unless one with the same content is already there. `prune` removes archives of older
    stand-ins from the directory; it is skipped when `names` narrows the set (tests), so that a
    partial archive never removes the full one."""
    progress: Progress = on_progress or (lambda _line: None)
    docker_cli.require_daemon()
    directory = (archive_dir or default_archive_dir()).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    builder = builder or ImageBuilder(out=progress)
    wanted = list(names) if names else [spec.name for spec in STANDINS]

    start = time.monotonic()
    refs = _build_standins(builder, wanted)
    build_seconds = time.monotonic() - start

    ids = [docker_cli.image_id(ref) or "" for ref in refs]
    target = directory / archive_name(list(zip(refs, ids, strict=True)))
    status: Literal["saved", "cached"] = "cached"
    save_start = time.monotonic()
    removed: tuple[Path, ...] = ()
    with _dir_lock(directory):
        if not target.is_file():
            _save(refs, target, progress)
            status = "saved"
        if prune and not names:
            removed = _prune(directory, target)
    save_seconds = time.monotonic() - save_start if status == "saved" else 0.0
    return ImageArchive(
        path=target,
        server_path=server_path(target),
        images=tuple(refs),
        size_bytes=target.stat().st_size,
        status=status,
        save_seconds=save_seconds,
        build_seconds=build_seconds,
        removed=removed,
    )
