"""`agent-bridge doctor`'s checks of the state dir: writable and private, free space, the
session store (SQLite `PRAGMA integrity_check`, or the PostgreSQL store), the log directory."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from typing import Any

from bridge.diagnostics.report import Check

LOW_DISK_BYTES = 200 * 1024 * 1024


# -- state dir ------------------------------------------------------------------------------------
def check_state_dir(state_dir: str) -> list[Check]:
    checks: list[Check] = []
    details: dict[str, Any] = {"path": state_dir}
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=state_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return [
            Check(
                "state dir",
                "error",
                f"{state_dir} is not writable: {exc.strerror or exc}",
                "fix its ownership/permissions, or choose another with --state-dir or AGENT_BRIDGE_STATE_DIR",
                details,
            )
        ]
    notes: list[str] = []
    status = "ok"
    fix = None
    mode = os.stat(state_dir).st_mode & 0o777
    if mode & 0o077:
        status, fix = "warn", f"chmod 700 {state_dir}"
        notes.append(f"readable by other users (mode {mode:03o}); it holds the WebSocket token and logs")
    free = shutil.disk_usage(state_dir).free
    details["freeBytes"] = free
    if free < LOW_DISK_BYTES:
        status, fix = "warn", "free some disk space: the session log stops growing when the disk is full"
        notes.append(f"only {free // (1024 * 1024)} MiB free")
    checks.append(
        Check(
            "state dir",
            status,
            state_dir + (f": {'; '.join(notes)}" if notes else " (writable)"),
            fix,
            details,
        )
    )
    checks.append(check_store(os.path.join(state_dir, "sessions.db")))
    checks.append(check_logs(state_dir))
    return checks


def check_store(path: str) -> Check:
    if not os.path.exists(path):
        return Check(
            "session store",
            "ok",
            f"{path} does not exist yet (created on first start)",
            details={"path": path},
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
            sessions = db.execute("SELECT count(*) FROM sessions WHERE deleted = 0").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check(
            "session store",
            "error",
            f"{path} cannot be read: {exc}",
            f"if no daemon is running, move {path} (and its -wal/-shm files) aside; a new store is created on start",
            {"path": path},
        )
    if rows != ["ok"]:
        return Check(
            "session store",
            "error",
            f"{path} is damaged: {'; '.join(rows[:3])}",
            f"stop the daemons, then recover with `sqlite3 {path} .recover > dump.sql` or move the file aside",
            {"path": path, "integrity": rows[:20]},
        )
    # The log holds every prompt and answer: only its user may read it (WAL and SHM too).
    loose = [
        f"{os.path.basename(f)} {os.stat(f).st_mode & 0o777:03o}"
        for f in (path, path + "-wal", path + "-shm")
        if os.path.exists(f) and os.stat(f).st_mode & 0o077
    ]
    if loose:
        return Check(
            "session store",
            "warn",
            f"{path}: readable by other users ({', '.join(loose)}); it holds every session's history",
            f"chmod 600 {path}*",
            {"path": path, "sessions": sessions},
        )
    return Check(
        "session store",
        "ok",
        f"{path}: integrity ok, {sessions} sessions",
        details={"path": path, "sessions": sessions},
    )


async def check_postgres_store(url: str) -> Check:
    from bridge.store.pg_probe import probe

    found = await probe(url)
    details: dict[str, Any] = {"url": found.where, "schemaVersion": found.version}
    if found.error is not None:
        return Check(
            "session store",
            "error",
            found.error,
            "check the server, the URL (host, port, database) and the password (PGPASSWORD or ~/.pgpass)",
            details,
        )
    if found.version is None:
        return Check(
            "session store",
            "ok",
            f"{found.where}: reachable, no schema yet (created on first start)",
            details=details,
        )
    if found.too_new:
        return Check(
            "session store",
            "error",
            f"{found.where} has schema version {found.version}, newer than this agent-bridge knows",
            "upgrade agent-bridge, or use another database",
            details,
        )
    if found.outdated:
        return Check(
            "session store",
            "ok",
            f"{found.where}: schema {found.version}, upgraded on the next start",
            details=details,
        )
    details.update(sessions=found.sessions, daemons=found.daemons)
    return Check(
        "session store",
        "ok",
        f"{found.where}: schema {found.version}, {found.sessions} sessions, {found.daemons} live daemon(s)",
        details=details,
    )


def check_logs(state_dir: str) -> Check:
    directory = os.path.join(state_dir, "logs")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        return Check(
            "logs",
            "warn",
            f"cannot create {directory}: {exc.strerror or exc}",
            "fix the state dir's permissions",
        )
    if not os.access(directory, os.W_OK):
        return Check("logs", "warn", f"{directory} is not writable", "fix its permissions")
    return Check("logs", "ok", f"daily log files in {directory}", details={"path": directory})
