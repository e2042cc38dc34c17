"""Real PostgreSQL, Redis and gunicorn processes for the demo app tests.

Everything runs from Debian packages (postgresql, redis-server) and the app's
own uv lock file on 127.0.0.1; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "demo-app"
LOCALHOST = "127.0.0.1"

# --------------------------------------------------------------------------- tools


def find_pg_tool(name: str) -> str | None:
    """Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/N/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class Tools:
    uv: str
    initdb: str
    pg_ctl: str
    psql: str
    redis_server: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("timeout", 120)
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


# ------------------------------------------------------------------------ app venv

# ------------------------------------------------------------------------ postgres


class Postgres:
    """A throwaway cluster (initdb) with password auth over TCP on 127.0.0.1."""

    def __init__(self, tools: Tools) -> None:
        self.tools = tools
        self.port = free_port()
        # Not under pytest's 0700 tmp dir: the postgres user must reach it.
        self.base = Path(tempfile.mkdtemp(prefix="demo-app-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        # initdb refuses to run as root: use Debian's postgres user then.
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.base, pw.pw_uid, pw.pw_gid)

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *cmd] if self.user else cmd

    def start(self) -> None:
        run(
            self._as_owner(
                [
                    self.tools.initdb,
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
        )
        options = f"-p {self.port} -k {self.base} -c listen_addresses={LOCALHOST} -c fsync=off"
        run(
            self._as_owner(
                [
                    self.tools.pg_ctl,
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            run(
                self._as_owner(
                    [self.tools.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]
                )
            )
        shutil.rmtree(self.base, ignore_errors=True)

    def sql(self, statement: str, database: str = "postgres") -> str:
        # Superuser over the Unix socket (trust), like an admin on the server.
        return run(
            [
                self.tools.psql,
                "-h",
                str(self.base),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                statement,
            ]
        ).stdout

    def create_database(self, name: str, user: str, password: str) -> str:
        """Role and database as the project's postgres container creates them."""
        self.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.sql(f"CREATE DATABASE {name} OWNER {user}")
        return f"postgresql://{user}:{password}@{LOCALHOST}:{self.port}/{name}"


# --------------------------------------------------------------------------- redis


class Redis:
    def __init__(self, tools: Tools) -> None:
        self.tools = tools
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def ping(self) -> bool:
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.tools.redis_server,
                "--port",
                str(self.port),
                "--bind",
                LOCALHOST,
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 15, f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        self.process = None

    def url(self, db: int = 0) -> str:
        return f"redis://{LOCALHOST}:{self.port}/{db}"


# ----------------------------------------------------------------------------- app


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class App:
    """One deployed project: the entrypoint running gunicorn from the uv venv."""

    name: str
    venv: Path
    env: dict[str, str]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def stdout_path(self) -> Path:
        return self.workdir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / f"{self.name}.stderr"

    @property
    def metrics_dir(self) -> Path:
        return Path(self.env["PROMETHEUS_MULTIPROC_DIR"])

    def full_env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": os.environ.get("HOME", "/tmp"),
            "GUNICORN_BIND": f"{LOCALHOST}:{self.port}",
            **self.env,
        }

    def manage(
        self, *args: str, check: bool = True, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.venv / "bin" / "python"), "manage.py", *args]
        if check:
            return run(cmd, cwd=APP_DIR, env=self.full_env(), **kwargs)
        return subprocess.run(
            cmd,
            cwd=APP_DIR,
            env=self.full_env(),
            capture_output=True,
            text=True,
            timeout=kwargs.get("timeout", 120),
            check=False,
        )

    def start(self) -> None:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                ["sh", str(APP_DIR / "docker-entrypoint.sh")],
                cwd=APP_DIR,
                env=self.full_env(),
                stdout=out,
                stderr=err,
            )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited {self.process.returncode}:\n{self.stderr_path.read_text()}"
                    f"\n{self.stdout_path.read_text()}"
                )
            try:
                return self.request("GET", "/healthz", timeout=1).status == 200
            except OSError:
                return False

        wait_until(healthy, 60, f"{self.name} /healthz")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # gunicorn's graceful shutdown, as `docker stop` sends it.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Response:
        conn = http.client.HTTPConnection(LOCALHOST, self.port, timeout=timeout)
        try:
            data = (
                None
                if body is None
                else (body if isinstance(body, bytes) else json.dumps(body).encode())
            )
            send_headers = {"Host": LOCALHOST, **(headers or {})}
            if data is not None:
                send_headers.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=send_headers)
            resp = conn.getresponse()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def stdout_lines(self) -> list[str]:
        return [line for line in self.stdout_path.read_text().splitlines() if line.strip()]


def make_app(
    name: str,
    venv: Path,
    postgres: Postgres,
    redis: Redis,
    redis_db: int,
    workdir: Path,
    **extra: str,
) -> App:
    database_url = postgres.create_database(f"{name}_staging", f"{name}_user", f"pw-{name}-secret")
    (workdir / name).mkdir(parents=True, exist_ok=True)
    env = {
        "PROJECT_NAME": name,
        "DJANGO_SECRET_KEY": f"test-secret-key-for-{name}-" + "s" * 40,
        "DJANGO_DEBUG": "False",
        "DJANGO_ALLOWED_HOSTS": f"{name}.staging.example.test,{LOCALHOST}",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url(redis_db),
        "EMAIL_HOST": LOCALHOST,
        "EMAIL_PORT": "1025",
        "STATIC_ROOT": str(workdir / name / "staticfiles"),
        "MEDIA_ROOT": str(workdir / name / "media"),
        "DJANGO_LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / name / "prometheus-multiproc"),
        "DB_WAIT_TIMEOUT": "30",
        **extra,
    }
    return App(name=name, venv=venv, env=env, workdir=workdir)
