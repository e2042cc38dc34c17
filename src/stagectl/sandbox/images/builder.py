"""Content-keyed builder of the test bed's Docker images.

No container registry is reachable on the machines stagectl is developed and tested on, so
nothing here pulls: a Debian root file system is made with ``debootstrap --variant=minbase``
and imported with ``docker import``, and every other image is built ``FROM`` that base (or
``FROM scratch``) with the Dockerfiles beside this module:

* **stand-ins** for the official images the templates reference (``prom/prometheus``,
  ``postgres``, ``redis``, ``nginx``, ...), built from Debian packages and honouring the official
  image's interface (entrypoint arguments, config and data paths, environment variables, ports,
  user, healthcheck tools);
* the **sandbox server**: Debian 13 booting systemd, reachable over SSH, for ``stagectl sandbox``.

Each image is tagged ``REPOSITORY:KEY`` where KEY hashes everything that goes into it (the
Dockerfile and its build context, and the parent image's key); when that tag exists the build is
skipped, so a second run takes seconds. ``REPOSITORY:latest`` follows the last build.

Importing this module has no side effects; ``python -m stagectl.sandbox.images build`` builds.
Production templates never refer to these images: environments point their image settings at
them for local runs only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from stagectl import process
from stagectl.errors import ToolMissing
from stagectl.process import Completed

__all__ = [
    "BASES",
    "IMAGES",
    "NO_STANDIN",
    "SANDBOX_ACME",
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

IMAGES_DIR = Path(__file__).resolve().parent
BASE_FILES_DIR = IMAGES_DIR / "_base"

#: Bump to rebuild everything when the way images are made changes outside the hashed files.
RECIPE_VERSION = "1"
KEY_LENGTH = 16

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_FILE_IN_CONTEXT = "testbed-ca.crt"
STAGE_LABEL = "org.stagectl.build-stage=1"

DEBOOTSTRAP_TIMEOUT = 900.0
BUILD_TIMEOUT = 1200.0
DOCKER_TIMEOUT = 120.0
LOCK_TIMEOUT = 1800.0


class BuildError(RuntimeError):
    """An image could not be built; the message says which and where the log is."""


@dataclass(frozen=True)
class BaseImage:
    """A Debian root file system made with debootstrap and imported into Docker."""

    suite: str
    variant: str = "minbase"
    repository: str = "stagectl-base/debian"

    @property
    def name(self) -> str:
        return f"base:{self.suite}"


@dataclass(frozen=True)
class ImageSpec:
    """One image built from a Dockerfile under ``IMAGES_DIR / context``."""

    name: str
    repository: str
    #: ``base:<suite>`` or the name of another ImageSpec.
    parent: str
    #: Official image reference this stands in for (None for the sandbox server).
    official: str | None
    description: str
    #: Stage the machine's CA bundle into the build context as ``testbed-ca.crt`` (PyPI access).
    needs_ca: bool = False
    #: Interface notes worth knowing when writing templates against the official image.
    notes: str = ""
    context: str = field(default="")

    @property
    def context_dir(self) -> Path:
        return IMAGES_DIR / (self.context or self.name)


BASES: tuple[BaseImage, ...] = (BaseImage("trixie"),)

STANDINS: tuple[ImageSpec, ...] = (
    ImageSpec(
        "prometheus",
        "stagectl-standin/prometheus",
        "base:trixie",
        "prom/prometheus",
        "Debian prometheus 2.53 (+promtool)",
        notes="user nobody; busybox wget; Prometheus 2.x: v3-only flags/config are not available",
    ),
    ImageSpec(
        "alertmanager",
        "stagectl-standin/alertmanager",
        "base:trixie",
        "prom/alertmanager",
        "Debian prometheus-alertmanager 0.28 (+amtool)",
        notes="user nobody; busybox wget",
    ),
    ImageSpec(
        "node-exporter",
        "stagectl-standin/node-exporter",
        "base:trixie",
        "prom/node-exporter",
        "Debian prometheus-node-exporter 1.9",
        notes="user nobody; busybox wget",
    ),
    ImageSpec(
        "blackbox-exporter",
        "stagectl-standin/blackbox-exporter",
        "base:trixie",
        "prom/blackbox-exporter",
        "Debian prometheus-blackbox-exporter 0.26",
        notes="root (as the official image); busybox wget",
    ),
    ImageSpec(
        "postgres-exporter",
        "stagectl-standin/postgres-exporter",
        "base:trixie",
        "prometheuscommunity/postgres-exporter",
        "Debian prometheus-postgres-exporter 0.17",
        notes="user nobody; busybox wget",
    ),
    ImageSpec(
        "redis-exporter",
        "stagectl-standin/redis-exporter",
        "base:trixie",
        "oliver006/redis_exporter",
        "Debian prometheus-redis-exporter 1.69",
        notes="FROM scratch like the official image: no shell, no healthcheck tool",
    ),
    ImageSpec(
        "nginx-exporter",
        "stagectl-standin/nginx-exporter",
        "base:trixie",
        "nginx/nginx-prometheus-exporter",
        "Debian prometheus-nginx-exporter 1.4",
        notes="FROM scratch like the official image: no shell, no healthcheck tool",
    ),
    ImageSpec(
        "postgres",
        "stagectl-standin/postgres",
        "base:trixie",
        "postgres",
        "Debian postgresql 17 + official-style entrypoint",
        notes="uid 999; pg_isready, psql; no curl/wget",
    ),
    ImageSpec(
        "redis",
        "stagectl-standin/redis",
        "base:trixie",
        "redis",
        "Debian redis-server 8.0 + official-style entrypoint",
        notes="uid 999; redis-cli; no curl/wget",
    ),
    ImageSpec(
        "nginx",
        "stagectl-standin/nginx",
        "base:trixie",
        "nginx",
        "Debian nginx 1.26, official nginx.conf/entrypoint",
        notes="uid 101; curl; stub_status built in",
    ),
    ImageSpec(
        "python",
        "stagectl-standin/python",
        "base:trixie",
        "python:3.13-slim",
        "Debian python3 3.13 + pip + venv + uv",
        needs_ca=True,
        notes="uv preinstalled (the official image has none); no curl/wget",
    ),
    ImageSpec(
        "uv",
        "stagectl-standin/uv",
        "python",
        "ghcr.io/astral-sh/uv",
        "/uv and /uvx from PyPI's uv",
        notes="FROM scratch, for COPY --from only",
    ),
)

SANDBOX_SERVER = ImageSpec(
    "sandbox-server",
    "stagectl-sandbox/server",
    "base:trixie",
    None,
    "Debian 13 + systemd, sshd, sudo, python3",
)

#: The sandbox's ACME server (not a stand-in: production talks to Let's Encrypt itself).
SANDBOX_ACME = ImageSpec(
    "pebble",
    "stagectl-sandbox/pebble",
    "base:trixie",
    None,
    "Debian pebble + pebble-challtestsrv: an ACME server and its DNS for the sandbox",
)

IMAGES: tuple[ImageSpec, ...] = (*STANDINS, SANDBOX_SERVER, SANDBOX_ACME)

#: ``docker run`` options under which the sandbox server boots systemd on the test bed
#: (``--privileged`` fails there). Add a volume on /var/lib/docker (so the
#: inner Docker can use overlay2) and publish SSH on 127.0.0.1, e.g. ``-p 127.0.0.1:2222:22``.
SANDBOX_RUN_OPTIONS: tuple[str, ...] = (
    *(
        f"--cap-add={cap}"
        for cap in (
            "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "MKNOD", "AUDIT_CONTROL", "AUDIT_WRITE",
            "SYS_NICE", "IPC_LOCK", "NET_RAW", "SYS_MODULE", "LINUX_IMMUTABLE", "SYS_TIME",
            "DAC_READ_SEARCH", "SYSLOG",
        )
    ),
    "--security-opt", "seccomp=unconfined",
    "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--device-cgroup-rule=a *:* rwm",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
)  # fmt: skip

#: Components of the stack that cannot be had on the test bed (no package, no registry): their
#: configurations are validated statically and tests that need them are skipped, saying so.
NO_STANDIN: tuple[tuple[str, str], ...] = (
    ("grafana/grafana", "no Debian or PyPI package"),
    ("grafana/loki", "no Debian or PyPI package"),
    ("grafana/alloy", "no Debian or PyPI package (nor grafana/promtail)"),
    ("gcr.io/cadvisor/cadvisor", "no Debian or PyPI package"),
)


def find_standin(official: str) -> ImageSpec:
    """The stand-in for an official reference such as ``prom/prometheus:v2.53.0`` or
    ``postgres:16-alpine`` (tags and registry hosts of the reference are ignored, except that
    ``python`` matches any ``python:*`` tag)."""
    repo = _repository_of(official)
    for spec in STANDINS:
        assert spec.official is not None
        if _repository_of(spec.official) == repo:
            return spec
    known = ", ".join(sorted({_repository_of(s.official or "") for s in STANDINS}))
    raise KeyError(f"no stand-in for {official!r}; stand-ins exist for: {known}")


def _repository_of(ref: str) -> str:
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "quay.io/", "ghcr.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name


def docker_available(docker: str = "docker", timeout: float = 10.0) -> bool:
    """True when a Docker daemon answers ``docker info``."""
    try:
        proc = process.run([docker, "info", "--format", "{{.ServerVersion}}"], timeout=timeout)
    except ToolMissing:
        return False
    return proc.ok and bool(proc.stdout.strip())


@dataclass
class BuildResult:
    name: str
    official: str | None
    ref: str
    status: str  # "built" | "cached"
    seconds: float
    size_bytes: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "official": self.official,
            "ref": self.ref,
            "latest": self.ref.rsplit(":", 1)[0] + ":latest",
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "size_bytes": self.size_bytes,
        }


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tree_manifest(root: Path) -> list[list[str]]:
    """Sorted [relative path, 'x' or '-', sha256] of every file under root."""
    entries: list[list[str]] = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        mode = path.stat().st_mode
        entries.append(
            [
                path.relative_to(root).as_posix(),
                "x" if mode & stat.S_IXUSR else "-",
                _sha256_file(path),
            ]
        )
    return entries


def _hash(obj: object) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:KEY_LENGTH]


class ImageBuilder:
    """Builds the images in dependency order, skipping those whose content key is present."""

    def __init__(
        self,
        *,
        docker: str | None = None,
        mirror: str | None = None,
        security_mirror: str | None = None,
        log_dir: Path | None = None,
        work_dir: Path | None = None,
        ca_bundle: Path | None = None,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.docker = docker or os.environ.get("STAGECTL_DOCKER", "docker")
        self.mirror = mirror or os.environ.get("STAGECTL_DEBIAN_MIRROR", DEFAULT_MIRROR)
        self.security_mirror = security_mirror or os.environ.get(
            "STAGECTL_DEBIAN_SECURITY_MIRROR", DEFAULT_SECURITY_MIRROR
        )
        tmp = Path(tempfile.gettempdir())
        self.log_dir = log_dir or Path(
            os.environ.get("STAGECTL_IMAGE_LOG_DIR", str(tmp / "stagectl-images" / "logs"))
        )
        # debootstrap needs a file system without nodev/noexec: /var/tmp rather than /tmp.
        self.work_dir = work_dir or Path(os.environ.get("STAGECTL_IMAGE_WORK_DIR", "/var/tmp"))
        self.ca_bundle = ca_bundle or Path(os.environ.get("SSL_CERT_FILE", str(CA_BUNDLE)))
        self.out: Callable[[str], None] = out or (lambda line: print(line, flush=True))
        self._keys: dict[str, str] = {}

    # ----- keys and references -------------------------------------------------------------

    def base_for(self, name: str) -> BaseImage:
        for base in BASES:
            if base.name == name:
                return base
        raise KeyError(f"unknown base {name!r}")

    def spec(self, name: str) -> ImageSpec:
        for spec in IMAGES:
            if spec.name == name:
                return spec
        raise KeyError(f"unknown image {name!r}; known: {', '.join(s.name for s in IMAGES)}")

    def key(self, name: str) -> str:
        """Content key of a base (``base:trixie``) or an image, without touching Docker."""
        if name in self._keys:
            return self._keys[name]
        if name.startswith("base:"):
            base = self.base_for(name)
            key = _hash(
                {
                    "recipe": RECIPE_VERSION,
                    "kind": "debootstrap",
                    "suite": base.suite,
                    "variant": base.variant,
                    "mirror": self.mirror,
                    "security_mirror": self.security_mirror,
                    "files": _tree_manifest(BASE_FILES_DIR),
                }
            )
        else:
            spec = self.spec(name)
            key = _hash(
                {
                    "recipe": RECIPE_VERSION,
                    "kind": "dockerfile",
                    "parent": self.key(spec.parent),
                    "files": _tree_manifest(spec.context_dir),
                    "needs_ca": spec.needs_ca,
                }
            )
        self._keys[name] = key
        return key

    def ref(self, name: str) -> str:
        """The content-keyed reference (``REPOSITORY:KEY``) of a base or an image."""
        if name.startswith("base:"):
            base = self.base_for(name)
            return f"{base.repository}:{base.suite}-{self.key(name)}"
        return f"{self.spec(name).repository}:{self.key(name)}"

    def latest_ref(self, name: str) -> str:
        if name.startswith("base:"):
            base = self.base_for(name)
            return f"{base.repository}:{base.suite}"
        return f"{self.spec(name).repository}:latest"

    def closure(self, names: Iterable[str]) -> list[str]:
        """The named images and their parents, parents first."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if not name.startswith("base:"):
                visit(self.spec(name).parent)
            order.append(name)

        for name in names:
            visit(name)
        return order

    # ----- docker ----------------------------------------------------------------------------

    def _docker(self, *args: str, timeout: float = DOCKER_TIMEOUT) -> Completed:
        return process.run([self.docker, *args], timeout=timeout, package="docker.io")

    def exists(self, ref: str) -> bool:
        return self._docker("image", "inspect", "--format", "{{.Id}}", ref).returncode == 0

    def size(self, ref: str) -> int | None:
        proc = self._docker("image", "inspect", "--format", "{{.Size}}", ref)
        try:
            return int(proc.stdout.strip()) if proc.returncode == 0 else None
        except ValueError:
            return None

    def tag(self, source: str, target: str) -> None:
        proc = self._docker("tag", source, target)
        if proc.returncode != 0:
            raise BuildError(f"docker tag {source} {target} failed: {proc.stderr.strip()}")

    def _image_id(self, ref: str) -> str:
        return self._docker("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

    def prune(self) -> list[str]:
        """Remove this builder's images whose content key is no longer current (older recipes);
        images of other repositories are never touched. Returns the removed references."""
        names = self.closure(spec.name for spec in IMAGES)
        repositories = {ref.rsplit(":", 1)[0] for ref in map(self.ref, names)}
        keep = {self.ref(name) for name in names} | {self.latest_ref(name) for name in names}
        listing = self._docker("images", "--format", "{{.Repository}}:{{.Tag}}")
        if listing.returncode != 0:
            raise BuildError(f"docker images failed: {listing.stderr.strip()}")
        stale = [
            ref
            for ref in listing.stdout.split()
            if ref.rsplit(":", 1)[0] in repositories and ref not in keep
        ]
        removed: list[str] = []
        for ref in stale:
            if self._docker("rmi", ref).returncode == 0:
                removed.append(ref)
        return removed

    # ----- building --------------------------------------------------------------------------

    def build(
        self, names: Sequence[str] | None = None, *, force: bool = False
    ) -> list[BuildResult]:
        """Build (or find cached) the named images and their parents; all images by default."""
        wanted = list(names) if names else [spec.name for spec in IMAGES]
        if not docker_available(self.docker):
            raise BuildError(
                "no Docker daemon answers 'docker info': run scripts/testbed-setup.sh docker first"
            )
        order = self.closure(wanted)  # unknown names fail here, before any waiting
        results: list[BuildResult] = []
        with self._lock():
            for name in order:
                results.append(self._ensure(name, force=force and name in wanted))
        return results

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One builder at a time on a machine (parallel test workers, two shells): the second
        waits, then finds the first one's images cached."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.work_dir / "stagectl-images.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            self.out(f"waiting for another image build to finish ({lock.lock_file})")
            try:
                lock.acquire(timeout=LOCK_TIMEOUT)
            except Timeout:
                raise BuildError(f"another image build held {lock.lock_file} for {LOCK_TIMEOUT:.0f}s") from None
        try:
            yield
        finally:
            lock.release()

    def _ensure(self, name: str, *, force: bool) -> BuildResult:
        ref, latest = self.ref(name), self.latest_ref(name)
        official = None if name.startswith("base:") else self.spec(name).official
        start = time.monotonic()
        if not force and self.exists(ref):
            status = "cached"
        else:
            self.out(f"building {name} -> {ref}")
            if name.startswith("base:"):
                self._build_base(self.base_for(name), ref)
            else:
                self._build_image(self.spec(name), ref)
            status = "built"
        if self._image_id(latest) != self._image_id(ref):
            self.tag(ref, latest)
        seconds = time.monotonic() - start
        self.out(f"{status:>6} {name:<18} {ref} ({seconds:.1f}s)")
        return BuildResult(name, official, ref, status, seconds, self.size(ref))

    def _log_path(self, name: str, key: str) -> Path:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{name.replace(':', '-')}-{key}.log"

    def _run_logged(self, cmd: Sequence[str], log: Path, timeout: float, what: str) -> None:
        with log.open("ab") as handle:
            handle.write(f"$ {shlex.join(cmd)}\n".encode())
            handle.flush()
            try:
                proc = process.run(cmd, timeout=timeout, log=handle)
            except ToolMissing as exc:
                raise BuildError(f"{what}: {exc} ({exc.hint})") from exc
        if proc.timed_out:
            raise BuildError(f"{what}: timed out after {timeout:.0f}s; log: {log}")
        if proc.returncode != 0:
            raise BuildError(f"{what} failed (exit {proc.returncode}); log: {log}\n{_tail(log)}")

    def _build_base(self, base: BaseImage, ref: str) -> None:
        if shutil.which("debootstrap") is None:
            raise BuildError(
                "debootstrap is missing: run scripts/testbed-setup.sh validators first"
            )
        log = self._log_path(base.name, self.key(base.name))
        log.write_bytes(b"")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with _scratch_dir(self.work_dir, f"stagectl-debootstrap-{base.suite}-") as tmp:
            rootfs = tmp / "rootfs"
            self._run_logged(
                ["debootstrap", f"--variant={base.variant}", base.suite, str(rootfs), self.mirror],
                log,
                DEBOOTSTRAP_TIMEOUT,
                f"debootstrap {base.suite}",
            )
            _prepare_rootfs(rootfs, base.suite, self.mirror, self.security_mirror)
            # tar's stream straight into `docker import`, with either's failure failing the step
            # and removing what was imported: a truncated root file system must not pass as cached.
            try:
                self._import_rootfs(rootfs, base, ref, log)
            except BuildError:
                self._docker("rmi", "--force", ref)
                raise

    def _import_rootfs(self, rootfs: Path, base: BaseImage, ref: str, log: Path) -> None:
        self._run_logged(
            [
                "bash", "-o", "pipefail", "-c", 'rootfs=$1; shift; tar --numeric-owner -C "$rootfs" -c . | "$@"',
                "import-rootfs", str(rootfs),
                self.docker, "import",
                "--change", 'CMD ["/bin/bash"]',
                "--change", f"LABEL org.stagectl.content-key={self.key(base.name)}",
                "-", ref,
            ],
            log,
            DOCKER_TIMEOUT * 5,
            f"docker import of {base.suite}",
        )  # fmt: skip

    def _build_image(self, spec: ImageSpec, ref: str) -> None:
        key = self.key(spec.name)
        log = self._log_path(spec.name, key)
        log.write_bytes(b"")
        parent = self.ref(spec.parent)
        with _scratch_dir(Path(tempfile.gettempdir()), f"stagectl-ctx-{spec.name}-") as tmp:
            context = tmp / "context"
            shutil.copytree(spec.context_dir, context, ignore=shutil.ignore_patterns("__pycache__"))
            if spec.needs_ca:
                target = context / CA_FILE_IN_CONTEXT
                if self.ca_bundle.is_file():
                    shutil.copyfile(self.ca_bundle, target)
                else:
                    target.write_bytes(b"")
            labels = [f"org.stagectl.content-key={key}"]
            if spec.official:
                labels.append(f"org.stagectl.stands-in-for={spec.official}")
            cmd = [
                self.docker,
                "build",
                "--build-arg",
                f"BASE={parent}",
                "-t",
                ref,
                "-t",
                self.latest_ref(spec.name),
            ]
            for label in labels:
                cmd += ["--label", label]
            cmd.append(str(context))
            self._run_logged(cmd, log, BUILD_TIMEOUT, f"docker build of {spec.name}")
        # The classic builder keeps intermediate stages as dangling images (one of them holds
        # the staged CA bundle): remove ours, labelled in the Dockerfiles.
        self._docker("image", "prune", "-f", "--filter", f"label={STAGE_LABEL}")


@contextmanager
def _scratch_dir(parent: Path, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=str(parent)))
    try:
        yield path
    finally:
        _remove_tree_safely(path)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    mounts: list[str] = []
    try:
        with open("/proc/self/mounts", encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 1:
                    point = fields[1].replace("\\040", " ")
                    if point.startswith(prefix):
                        mounts.append(point)
    except OSError:
        pass
    return mounts


def _remove_tree_safely(path: Path) -> None:
    """Remove a debootstrap work tree, first unmounting anything a failed debootstrap left
    mounted in it (proc, sys, a bind of /dev): never delete through a mount."""
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        process.run(["umount", "-l", point], timeout=30, package="mount")
    left = _mounts_under(path)
    if left:
        print(f"warning: not removing {path}: still mounted: {', '.join(left)}", file=sys.stderr)
        return
    shutil.rmtree(path, ignore_errors=True)


def _prepare_rootfs(rootfs: Path, suite: str, mirror: str, security_mirror: str) -> None:
    """Turn a fresh debootstrap tree into a base image (like the official slim images)."""
    policy = rootfs / "usr/sbin/policy-rc.d"
    shutil.copyfile(BASE_FILES_DIR / "policy-rc.d", policy)
    policy.chmod(0o755)
    shutil.copyfile(BASE_FILES_DIR / "apt.conf", rootfs / "etc/apt/apt.conf.d/90stagectl")
    (rootfs / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(
        BASE_FILES_DIR / "dpkg-slim.cfg", rootfs / "etc/dpkg/dpkg.cfg.d/90stagectl-slim"
    )
    sources = (BASE_FILES_DIR / "sources.list.in").read_text(encoding="utf-8")
    sources = (
        sources.replace("@MIRROR@", mirror)
        .replace("@SECURITY_MIRROR@", security_mirror)
        .replace("@SUITE@", suite)
    )
    (rootfs / "etc/apt/sources.list").write_text(sources, encoding="utf-8")
    # The machine's resolver and host name must not leak into images; Docker provides both.
    for name in ("etc/resolv.conf", "etc/hostname"):
        target = rootfs / name
        if target.is_symlink() or target.exists():
            target.unlink()
        target.write_text("", encoding="utf-8")
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "var/cache/apt/archives/*.deb",
        "var/log/*.log",
        "var/log/apt/*",
        "usr/share/man/*",
        "usr/share/info/*",
    ):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.name != "partial":
                path.unlink(missing_ok=True)
    for doc in (rootfs / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for item in doc.iterdir():
                if item.name != "copyright":
                    if item.is_dir() and not item.is_symlink():
                        shutil.rmtree(item, ignore_errors=True)
                    else:
                        item.unlink(missing_ok=True)
    locale_dir = rootfs / "usr/share/locale"
    if locale_dir.is_dir():
        for item in locale_dir.iterdir():
            if item.name != "locale.alias":
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    item.unlink(missing_ok=True)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit in ("B", "kB") else f"{value:.1f}{unit}"
        value /= 1000
    return f"{size}B"


def format_table(results: Sequence[BuildResult]) -> str:
    """Official reference -> stand-in tag, with status, time and size; then what has no
    stand-in."""
    rows = [("official reference", "stand-in (also :latest)", "status", "time", "size")]
    for res in results:
        if res.name.startswith("base:"):
            official = f"({res.name.split(':', 1)[1]} base)"
        else:
            official = res.official or "(sandbox server)"
        rows.append(
            (official, res.ref, res.status, f"{res.seconds:.1f}s", human_size(res.size_bytes))
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("no stand-in (configs validated statically; tests that need them are skipped):")
    for official, why in NO_STANDIN:
        lines.append(f"  {official}: {why}")
    return "\n".join(lines)
