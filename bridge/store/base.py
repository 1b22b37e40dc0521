"""The store interface: a session catalog, an append-only per-session event log, and the
instances (daemons) that own sessions through leases.

Any number of daemons — in one process tree, on one machine (one SQLite file) or on many
machines (one PostgreSQL database) — share one store. The rules every backend keeps:

- **Ownership.** Each daemon registers an `Instance` and keeps it alive with `heartbeat()`.
  A live session is owned by one instance (`SessionRecord.owner`): its lease is that
  instance's registration, so one heartbeat renews every lease the instance holds. A lease
  is *held* while the owner's registration has not expired and, when the owner runs on this
  host, its pid is alive (`owner_gone`). Only the owner appends to a session's log and
  drives its agent; `acquire()` takes a session whose owner is gone, atomically, so two
  daemons recovering at once never both get it.
- **Sequence numbers come from the store.** `append()` only queues; the seq of every row is
  allocated inside the transaction that commits it (the session's highest committed seq
  plus one), so the log is gap-free and duplicate-free per session whatever the number of
  writers, processes or machines.
- **Committed before sent.** `flush()` returns only when every row appended before the call
  is committed (or counted as dropped when the store has failed), also while another
  `flush()` is running: callers flush before writing to a client, so a client never sees a
  message that is not in the log.
- **Never on the event loop for long.** Every method that does I/O is async and performs it
  off the event loop (a worker thread, or an async driver); nothing holds a thread lock on
  the loop while the database waits for a lock. `append()` and `tail()` do no I/O.
- **Failures degrade, never crash.** Log writes that keep failing set `failed` (a
  `StoreError` whose message says what happened and what to do) and count `dropped` rows;
  sessions keep running. Catalog and lease methods raise `StoreError`; callers on a
  request path turn it into a JSON-RPC error, background callers log it and carry on.
- **Schema versions.** `open()` creates the schema, upgrades an older one through every
  migration in order (each in its own transaction), and refuses a newer one with
  `SchemaTooNew` (a `StoreError`) naming both versions.
- **Time.** Heartbeats and expiries are wall-clock seconds since the epoch (`time.time()`
  of the writing daemon, or the database server's clock where the backend has one); daemons
  sharing a store across machines need synchronised clocks, and leases last many seconds.

Module-level helpers (`owner_gone`, `this_host`, `process_started_at`) hold the liveness
rule once, for every backend.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from bridge import timeouts
from bridge.errors import SESSION_OWNED, RpcError, StoreError
from bridge.lazy import lazy_module

if TYPE_CHECKING:
    import psutil
else:
    # Imported at its first use: not on the path to the first `initialize` answer (bridge/lazy.py).
    psutil = lazy_module("psutil")

Direction = Literal["client", "agent", "bridge"]
Transport = Literal["stdio", "websocket", "client"]

# Catalog statuses of a session that has (or had, before its daemon died) a running agent.
LIVE_STATUSES: tuple[str, ...] = ("idle", "busy", "error")
# The schema version this code writes; `open()` migrates older stores up to it.
SCHEMA_VERSION = 4
# Default lease: an owner that has not renewed for this long is gone. Configurable
# (`lease_timeout` in the config); heartbeats run at a third of it.
DEFAULT_LEASE_SECONDS = timeouts.LEASE_TIMEOUT


@dataclass
class SessionRecord:
    id: str
    agent: str
    cwd: str
    created_at: str
    updated_at: str
    agent_session_id: str | None = None
    additional_directories: list[str] | None = None
    mcp_servers: list[dict[str, Any]] = field(default_factory=list)
    title: str | None = None
    archived: bool = False
    status: str = "idle"
    parent_id: str | None = None
    deleted: bool = False
    agent_path: str | None = None
    agent_version: str | None = None
    # The instance id of the daemon holding the session's lease; None when nobody does.
    # Whether that owner is still alive is `Store.instance(owner)` + `owner_gone`.
    owner: str | None = None
    # The session's usage counters (`_bridge/session/metrics`: turns, tokens, cost...), kept
    # across daemons and reopenings; None for a session that has had none yet.
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True)
class Event:
    seq: int
    at: str
    direction: Direction
    message: bytes  # the JSON message as sent on


@dataclass(frozen=True)
class Instance:
    """One daemon registered in the store: what another daemon needs to tell whether it is
    alive and how to reach it."""

    id: str
    pid: int
    host: str
    transport: Transport
    # `ws://HOST:PORT/acp` for a listener, once it accepts connections; None otherwise.
    ws_url: str | None
    # Wall-clock start time of the process `pid` (tells a reused pid from the original).
    pid_started_at: float
    started_at: str  # ISO 8601 UTC
    heartbeat_at: float  # epoch seconds of the last renewal
    expires_at: float  # epoch seconds; the instance (and every lease it holds) is gone after it


@dataclass(frozen=True)
class LogTail:
    """What this store instance knows of a session's log without I/O: the highest seq it
    committed for the session (0 when it committed none), and how many rows it queued that
    are not committed yet."""

    committed: int
    pending: int


class SchemaTooNew(StoreError):
    """The store was written by a newer agent-bridge: refuse rather than guess."""


class UpgradeBlocked(StoreError):
    """The store needs a schema upgrade while another daemon still uses it: that daemon
    runs an older agent-bridge, which would misread what the new schema writes."""


def upgrade_blocked(where: str, live: list[Instance], found: int) -> UpgradeBlocked:
    who = ", ".join(f"pid {i.pid} on {i.host}" for i in live[:3]) + (" …" if len(live) > 3 else "")
    return UpgradeBlocked(
        f"the session store {where} is at schema version {found} and still in use by an older "
        f"agent-bridge ({who}); upgrading it under that daemon would make it misread the log: "
        "stop it (close the editor window running it), or use another --state-dir / store"
    )


class LeaseHeld(RpcError):
    """A session is owned by another live daemon: the JSON-RPC error names the owner (pid,
    host, how to reach it). Raised by callers of `acquire()`, never by the store."""

    def __init__(self, session_id: str, owner: Instance) -> None:
        super().__init__(
            SESSION_OWNED,
            f"session {session_id} is running in another agent-bridge daemon ({describe_owner(owner)}); "
            "connect to that daemon, or wait until it exits and its lease expires to take it over here",
            {"sessionId": session_id, **lease_error_data(owner)},
        )
        self.owner = owner


class Store(Protocol):
    # Set when the log can no longer be written (the daemon keeps serving and says so).
    failed: StoreError | None
    # Rows appended but never committed because the store had failed.
    dropped: int
    # Where the store lives, for messages (a path, or a URL with its password masked).
    location: str

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, then create, upgrade (older schema) or refuse (newer: `SchemaTooNew`) the
        schema. Raises `StoreError` naming the location when the store cannot be used."""

    async def schema_version(self) -> int:
        """The schema version recorded in the store (after `open()`, `SCHEMA_VERSION`)."""

    async def close(self) -> None:
        """Commit what is queued (bounded; failures degrade), then close every connection.
        Does not unregister: call `unregister()` first on a clean shutdown."""

    # -- catalog -----------------------------------------------------------------------------
    async def create_session(self, rec: SessionRecord) -> None:
        """Insert a new session row, `rec.owner` included. Raises `StoreError`."""

    async def get_session(self, session_id: str) -> SessionRecord | None:
        """The row, deleted ones included (callers check `deleted`); None when unknown."""

    async def update_session(self, session_id: str, *, touch: bool = True, **fields: Any) -> None:
        """Set the given columns. `touch=True` also sets `updated_at` to now (last activity,
        the `session/list` order); bookkeeping (status on restart, close, agent death) passes
        `touch=False` so it never reorders the list. Unknown session: no-op."""

    async def list_sessions(
        self, *, cwd: str | None, offset: int, limit: int, include_archived: bool = True
    ) -> list[SessionRecord]:
        """Non-deleted sessions (optionally of one cwd), newest `updated_at` first, then id."""

    # -- event log ---------------------------------------------------------------------------
    def append(self, session_id: str, direction: Direction, message: bytes) -> None:
        """Queue one row for the session's log; no I/O. Its seq is allocated when `flush()`
        commits it. After `failed` is set, the row is counted in `dropped` instead. Rows of a
        session whose lease another live instance holds are dropped at commit (with a
        warning): a daemon that lost its lease never writes into the new owner's log."""

    def tail(self, session_id: str) -> LogTail:
        """No I/O: see `LogTail`. A reader that has read the log up to seq N is up to date
        with this instance's writes when `pending == 0 and committed <= N`."""

    async def flush(self) -> None:
        """Return once every row appended before this call is committed (or dropped because
        the store failed), even while another flush is in progress. Never raises: a write
        that keeps failing (full disk, I/O error, a lock held past the retry budget) sets
        `failed` and the rows are dropped."""

    async def events(self, session_id: str, after: int, limit: int) -> list[Event]:
        """Committed rows of the session with `seq > after`, in seq order, at most `limit`."""

    async def last_seq(self, session_id: str) -> int:
        """The session's highest committed seq (0 for an empty log)."""

    async def purge_events(self, session_id: str) -> int:
        """Delete every row of the session's log (committed, and queued in this instance);
        returns how many committed rows were deleted. For `session/delete`: the catalog row
        stays (marked deleted) so the id answers -32002 and deleting again is idempotent."""

    # -- instances and leases ----------------------------------------------------------------
    async def register(self, instance: Instance) -> None:
        """Insert or replace this daemon's registration (also to update `ws_url` once a
        listener is bound). The store remembers it as `self_id` for the calls below."""

    async def heartbeat(self, lease_seconds: float) -> float:
        """Renew this instance (and with it every lease it holds): `expires_at = now +
        lease_seconds`. Returns the new expiry. Raises `StoreError` when it cannot be written;
        if the registration is gone (removed as expired by another daemon), it is re-inserted,
        but sessions already taken over stay with their new owner."""

    async def unregister(self) -> None:
        """Clean shutdown: release every lease this instance holds and delete its row."""

    async def instance(self, instance_id: str) -> Instance | None:
        """A registered instance, alive or not (see `owner_gone`)."""

    async def instances(self) -> list[Instance]:
        """Every registered instance whose owner is not gone (alive by `owner_gone`)."""

    async def acquire(self, session_id: str) -> Instance | None:
        """Take the session's lease for this instance, atomically: succeeds (returns None)
        when the session has no owner, is already ours, or its owner is gone; otherwise
        changes nothing and returns the live owner. Raises `StoreError`."""

    async def release(self, session_id: str) -> None:
        """Give up the session's lease if this instance holds it (owner = None)."""

    async def taken_over(self) -> dict[str, str]:
        """Sessions whose lease another instance holds (`owner` set and not this instance),
        by id, with that owner's id: one read for the heartbeat's check of every session this
        instance runs, whatever their number."""

    async def orphaned_sessions(self) -> list[SessionRecord]:
        """Non-deleted sessions with a live status (`LIVE_STATUSES`) whose owner is None or
        gone: what start-up recovery may claim (`acquire`) and close. Never a session of a
        live daemon."""

    async def forget_instances(self) -> int:
        """Delete registrations that are gone (expired, or a dead pid on this host), leases
        they held included (owner = None). Returns how many. Housekeeping; any daemon may."""


# -- liveness, once for every backend ----------------------------------------------------------
_host: str | None = None


def this_host() -> str:
    global _host
    if _host is None:
        _host = socket.gethostname()
    return _host


def process_started_at(pid: int) -> float:
    """Wall-clock creation time of a running process (0.0 when there is none, or only its
    zombie: a daemon killed but not yet reaped by its parent is gone)."""
    if (started := _proc_started_at(pid)) is not None:
        return started
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return 0.0
        return float(proc.create_time())
    except psutil.Error:
        return 0.0


_boot_time: float | None = None


def _proc_started_at(pid: int) -> float | None:
    """What psutil computes on Linux (start ticks in /proc/PID/stat over CLK_TCK, plus the boot
    time of /proc/stat), without importing psutil: every daemon start registers its own
    instance, and psutil is ~25 ms of start-up here (issue 17). None: no /proc (psutil then)."""
    global _boot_time
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        if _boot_time is None:
            with open("/proc/stat", "rb") as f:
                _boot_time = next(float(line.split()[1]) for line in f if line.startswith(b"btime "))
    except FileNotFoundError:
        return 0.0 if os.path.isdir("/proc/self") else None
    except (OSError, StopIteration, ValueError):
        return None
    # Fields after the command (which may hold spaces and parentheses): state is the first,
    # starttime the 20th.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] == b"Z":
        return 0.0
    return float(fields[19]) / os.sysconf("SC_CLK_TCK") + _boot_time


def owner_gone(inst: Instance | None, now: float | None = None) -> bool:
    """True when `inst` no longer holds leases: unknown, expired, or — on this host — its pid
    is dead or reused by another process. A daemon on another host is trusted until its
    registration expires (its pid means nothing here)."""
    if inst is None:
        return True
    if (time.time() if now is None else now) >= inst.expires_at:
        return True
    if inst.host == this_host():
        if inst.pid == os.getpid():
            return False
        started = process_started_at(inst.pid)
        # psutil reports creation times rounded differently across calls: allow a second.
        return started == 0.0 or (inst.pid_started_at > 0 and abs(started - inst.pid_started_at) > 1.0)
    return False


def describe_owner(inst: Instance) -> str:
    """`pid 123 on host h, ws://127.0.0.1:8080/acp` — how to reach a session's owner."""
    where = f"pid {inst.pid}" + ("" if inst.host == this_host() else f" on host {inst.host}")
    return (
        f"{where}, {inst.ws_url}" if inst.ws_url else f"{where} ({inst.transport}, not reachable from here)"
    )


def lease_error_data(inst: Instance) -> dict[str, Any]:
    """The `data` of the JSON-RPC error for a session another live daemon owns."""
    data: dict[str, Any] = {
        "owner": {"instanceId": inst.id, "pid": inst.pid, "host": inst.host, "transport": inst.transport}
    }
    if inst.ws_url:
        data["owner"]["url"] = inst.ws_url
    return data


def new_instance(transport: Transport, lease_seconds: float, ws_url: str | None = None) -> Instance:
    """This process's registration, valid for `lease_seconds` from now."""
    import uuid
    from datetime import UTC, datetime

    now = time.time()
    pid = os.getpid()
    return Instance(
        id=f"inst_{uuid.uuid4().hex}",
        pid=pid,
        host=this_host(),
        transport=transport,
        ws_url=ws_url,
        pid_started_at=process_started_at(pid),
        started_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        heartbeat_at=now,
        expires_at=now + lease_seconds,
    )
