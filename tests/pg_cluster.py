"""A throw-away PostgreSQL cluster: `initdb` in a temp dir, then the server on a free loopback port.

Used by the store tests (a fresh database per test) and by `bench store`. The Debian
`postgresql` package provides the binaries (`.ci/run` installs it). initdb refuses to run as
root, so as root the cluster belongs to the `postgres` user (or `nobody`): initdb runs through
`runuser`, the server through `setpriv`. The server is our own child (not daemonized by
`pg_ctl`) with a parent-death signal, so a test run that dies, even by SIGKILL, leaves no
server behind. Clients connect over TCP with a password (scram-sha-256), as a daemon on
another machine would.
"""

from __future__ import annotations

import contextlib
import glob
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
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
        if (Path(c) / "initdb").exists() and (Path(c) / "postgres").exists():
            return Path(c)
    raise Unavailable("PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql")


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
    server: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *argv] if self.user else list(argv)

    def create_database(self) -> str:
        """A new, empty database; returns its URL."""
        import psycopg

        self.databases += 1
        name = f"test_{self.databases}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """A crash: SIGQUIT is PostgreSQL's immediate shutdown (no checkpoint; recovery at
        the next start replays the WAL)."""
        proc, self.server = self.server, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start(self) -> None:
        """Run the server as our child, with a parent-death signal: if the test run dies
        (even by SIGKILL) the server gets SIGQUIT and no postgres outlives it."""
        assert self.server is None
        who = ["--reuid", self.user, "--regid", self.user_group(), "--init-groups"] if self.user else []
        proc = subprocess.Popen(
            ["setpriv", *who, "--pdeathsig", "QUIT", "--", str(self.bin / "postgres"), "-D", str(self.root / "data")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        ready = threading.Event()
        tail: list[str] = []

        def drain() -> None:
            # Its log, kept (and drained: a full pipe would stall the server); readiness is
            # the line it prints once it accepts connections, not a guess in time.
            assert proc.stderr is not None
            with (self.root / "server.log").open("ab") as log:
                for line in proc.stderr:
                    log.write(line)
                    log.flush()
                    tail[:] = [*tail[-20:], line.decode(errors="replace")]
                    if b"ready to accept connections" in line:
                        ready.set()
            ready.set()  # exited: the caller sees it in poll()

        threading.Thread(target=drain, name="postgres-log", daemon=True).start()
        if not ready.wait(timeout=60) or proc.poll() is not None:
            proc.kill()
            proc.wait()
            raise RuntimeError("PostgreSQL did not start:\n" + "".join(tail))
        self.server = proc

    def user_group(self) -> str:
        assert self.user is not None
        return grp.getgrgid(pwd.getpwnam(self.user).pw_gid).gr_name


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
