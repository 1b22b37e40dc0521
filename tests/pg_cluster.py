"""A throw-away PostgreSQL cluster: `initdb` + `pg_ctl` in a temp dir, on a free loopback port.

Used by the store tests (a fresh database per test) and by `bench store`. The Debian
`postgresql` package provides the binaries (`.ci/run` installs it). initdb refuses to run as
root, so as root the cluster belongs to the `postgres` user (or `nobody`) and every server
command runs through `runuser`. Clients connect over TCP with a password (scram-sha-256), as
a daemon on another machine would.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "bridge"


class Unavailable(Exception):
    """PostgreSQL cannot be run here (binaries missing, no user to run it as)."""


def bindir() -> Path:
    candidates: list[str] = []
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if done.returncode == 0:
            candidates.append(done.stdout.strip())
    # Debian installs the server binaries outside PATH, one dir per major version: newest first.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise Unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")


def _major(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


def _run_as() -> str | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise Unavailable("running as root and there is no `postgres` or `nobody` user to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    root: Path
    port: int
    password: str
    user: str | None
    bin: Path
    databases: int = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *argv] if self.user else list(argv)

    def pg_ctl(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), *argv),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        self.databases += 1
        name = f"test_{self.databases}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate", "-w")

    def start(self) -> None:
        done = self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.root / "server.log"))
        if done.returncode != 0:
            log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr}\n{log}")


@contextlib.contextmanager
def cluster(*, durable: bool = False) -> Iterator[Cluster]:
    """A running cluster, removed at the end. `durable=False` (tests) turns fsync off: the
    tests check logic, not the disk, and the machine is shared; the bench keeps the defaults.
    `stop()` is a crash (immediate mode); `start()` recovers from it."""
    bin_dir = bindir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
    password = secrets.token_urlsafe(12)
    try:
        os.chmod(root, 0o755)
        (root / "pwfile").write_text(password + "\n")
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            os.chown(root / "pwfile", entry.pw_uid, entry.pw_gid)
        c = Cluster(root, 0, password, user, bin_dir)
        init = subprocess.run(
            c._cmd(
                str(bin_dir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(root / "pwfile"),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            raise Unavailable(f"initdb failed: {init.stdout}{init.stderr}")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{root}'",
            "max_connections = 200",
            "shared_buffers = 32MB",
        ]
        if not durable:
            # Commits still reach the WAL (in the OS cache) before they return, so a stop in
            # `immediate` mode (a server crash) loses nothing; only an OS crash could.
            settings += ["fsync = off", "full_page_writes = off"]
        with (root / "data" / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        for _attempt in range(5):
            # A free port can be taken between our probe and the server's bind: try another.
            c.port = _free_port()
            with (root / "data" / "postgresql.auto.conf").open("w") as auto:
                auto.write(f"port = {c.port}\n")
            try:
                c.start()
                break
            except RuntimeError as exc:
                if "Address already in use" not in str(exc):
                    raise
        else:
            raise RuntimeError("no free port for PostgreSQL after 5 attempts")
        try:
            yield c
        finally:
            c.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
