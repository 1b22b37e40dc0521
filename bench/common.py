"""What every benchmark shares: the machine description, statistics, the variants under test
(the bridge, the agent alone, a byte relay) and a small asyncio ACP client over pipes.

The client is deliberately thin (one large read per wake-up, `orjson` per line, futures for
responses) and is the same object for every variant, so its cost cancels out of the ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from bridge.wire.types import JsonObj

ROOT = Path(__file__).resolve().parent.parent
# The pinned agent CLIs: AGENT_BRIDGE_AGENTS_DIR as for the tests, else the checkout's .agents.
AGENTS = Path(os.environ.get("AGENT_BRIDGE_AGENTS_DIR") or ROOT / ".agents")
FAKE_AGENT = ROOT / "tests" / "fakes" / "fake_acp_agent.py"
PY = sys.executable


# -- the machine ---------------------------------------------------------------------------------
def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def load1() -> float:
    return os.getloadavg()[0]


def header(title: str) -> None:
    print(f"== {title}")
    print(f"   {machine()}")
    print(f"   {load()} at start")


# -- statistics ----------------------------------------------------------------------------------
def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def pct(xs: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank) of xs."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(p / 100 * len(s) + 0.5) - 1))
    return s[k]


def rotations(names: Sequence[str], repeats: int) -> list[list[str]]:
    """ABAB...: every round runs every variant, and the order rotates between rounds so that
    none is always first (or always runs right after the most expensive one)."""
    out = []
    for r in range(repeats):
        k = r % len(names)
        out.append([*names[k:], *names[:k]])
    return out


# -- the things under test -----------------------------------------------------------------------
def bridge_config(
    tmp: Path,
    *,
    agents: dict[str, JsonObj] | None = None,
    default_agent: str | None = "fake",
    login_shell: bool = False,
    name: str = "bridge.toml",
) -> Path:
    """A config whose `fake` agent is the fake ACP agent, plus `agents` (name → table).

    The login-shell environment capture is off unless asked for: it runs once per daemon
    and is cached per state dir for an hour, so it is a first-start cost, measured apart
    (`bench startup`); here `bash -l -i` does not even finish within its 5 s budget."""
    tables = {"fake": {"protocol": "acp", "command": PY, "args": [str(FAKE_AGENT)]}, **(agents or {})}
    lines = [f"login_shell_env = {'true' if login_shell else 'false'}"]
    if default_agent:
        lines.append(f"default_agent = {_toml(default_agent)}")
    for agent, table in tables.items():
        lines.append(f"[agents.{agent}]")
        for key, value in table.items():
            if key == "env":
                inner = ", ".join(f"{k} = {_toml(v)}" for k, v in value.items())
                lines.append(f"env = {{ {inner} }}")
            else:
                lines.append(f"{key} = {_toml(value)}")
    path = tmp / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    return orjson.dumps(value).decode()


# How the daemon is started: from this checkout, or (`--installed`, bench/installed.py) from
# a venv where it was pip-installed.
BRIDGE_HEAD: list[str] = [PY, "-m", "bridge"]


def bridge_argv(
    tmp: Path,
    *extra: str,
    config: Path | None = None,
    synchronous: str | None = None,
    head: list[str] | None = None,
) -> list[str]:
    """`agent-bridge` with its own state dir (durable log on) and the fake agent config.
    `synchronous` runs it through `bench.daemon`, which only changes the SQLite pragma."""
    state = tmp / f"state-{next(_counter)}"
    cfg = config or bridge_config(tmp)
    head = head or ([PY, "-m", "bench.daemon", synchronous] if synchronous else BRIDGE_HEAD)
    return [*head, "--config", str(cfg), "--state-dir", str(state), *extra]


_counter = itertools.count(1)


def direct_argv() -> list[str]:
    return [PY, str(FAKE_AGENT)]


def relay_argv() -> list[str]:
    """Two extra processes that copy bytes: what any extra hop costs on this machine."""
    return ["/bin/sh", "-c", f"cat | {shlex.join(direct_argv())} | cat"]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FAKE_ACP_STATE", None)
    env.update(extra)
    return env


# -- a thin ACP client -----------------------------------------------------------------------------
class RpcError(Exception):
    def __init__(self, error: JsonObj) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.error = error


@dataclass
class Counts:
    """What arrived for one session."""

    chunks: int = 0
    updates: int = 0
    first_chunk_at: float | None = None
    text: list[str] = field(default_factory=list)
    keep_text: bool = False
    # When set, `first_chunk_at` is the first chunk whose text contains it (agents may send
    # their own notices or empty chunks before the model's first words).
    marker: str | None = None


class Peer:
    """One ACP agent (or the bridge) as a subprocess, driven over its stdio."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, stderr_path: Path) -> None:
        self.proc = proc
        self.name = name
        self.stderr_path = stderr_path
        self._ids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[JsonObj]] = {}
        self.sessions: dict[str, Counts] = {}
        self.lines = 0
        self.on_request: Callable[[JsonObj], Any] = _refuse
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def counts(self, sid: str) -> Counts:
        c = self.sessions.get(sid)
        if c is None:
            c = self.sessions[sid] = Counts()
        return c

    def _start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        stream = self.proc.stdout
        buf = b""
        try:
            while True:
                data = await stream.read(1 << 20)
                if not data:
                    return
                buf += data
                if b"\n" not in data:
                    continue
                *lines, buf = buf.split(b"\n")
                now = time.perf_counter()
                for line in lines:
                    if line:
                        self._handle(orjson.loads(line), now)
        finally:
            self.closed.set()
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"{self.name} closed its stdout"))

    def _handle(self, msg: JsonObj, now: float) -> None:
        self.lines += 1
        method = msg.get("method")
        if method is None:
            fut = self._waiting.pop(msg.get("id"), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        if "id" in msg:
            result = self.on_request(msg)
            reply: JsonObj = {"jsonrpc": "2.0", "id": msg["id"]}
            if isinstance(result, RpcError):
                reply["error"] = result.error
            else:
                reply["result"] = result
            self.write(orjson.dumps(reply))
            return
        if method == "session/update":
            params = msg["params"]
            c = self.counts(params["sessionId"])
            c.updates += 1
            upd = params.get("update") or {}
            if upd.get("sessionUpdate") == "agent_message_chunk":
                c.chunks += 1
                if c.first_chunk_at is None and (
                    c.marker is None or c.marker in str((upd.get("content") or {}).get("text", ""))
                ):
                    c.first_chunk_at = now
                if c.keep_text:
                    c.text.append((upd.get("content") or {}).get("text", ""))

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")

    async def request_raw(self, method: str, params: Any) -> JsonObj:
        rid = next(self._ids)
        fut: asyncio.Future[JsonObj] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        self.write(orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        return await fut

    async def request(self, method: str, params: Any) -> Any:
        msg = await self.request_raw(method, params)
        if "error" in msg:
            raise RpcError(msg["error"])
        return msg["result"]

    async def initialize(self) -> JsonObj:
        result: JsonObj = await self.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": {
                    "fs": {"readTextFile": False, "writeTextFile": False},
                    "terminal": False,
                },
                "clientInfo": {"name": "agent-bridge-bench", "version": "1"},
            },
        )
        return result

    async def new_session(self, cwd: str, meta: JsonObj | None = None) -> JsonObj:
        params: JsonObj = {"cwd": cwd, "mcpServers": []}
        if meta is not None:
            params["_meta"] = meta
        result: JsonObj = await self.request("session/new", params)
        return result

    async def prompt(self, sid: str, text: str) -> JsonObj:
        result: JsonObj = await self.request(
            "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": text}]}
        )
        return result

    def stderr_tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.stderr_path.read_text(errors="replace")[-n:]
        return ""

    async def close(self, grace: float = 20.0) -> int | None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), grace)
        except TimeoutError:
            _kill_tree(self.proc.pid)
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return self.proc.returncode


def _refuse(msg: JsonObj) -> Any:
    return RpcError({"code": -32601, "message": f"the bench client does not serve {msg.get('method')}"})


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        parent = psutil.Process(pid)
        for p in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.Error):
                p.kill()


def _create(path: Path) -> Any:
    return open(path, "wb")  # closed by the caller's `with`


async def spawn(
    argv: Sequence[str], *, name: str, tmp: Path, env: dict[str, str] | None = None, cwd: str | None = None
) -> Peer:
    stderr_path = tmp / f"{name}-{next(_counter)}.stderr"
    with _create(stderr_path) as err:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env or child_env(),
            cwd=cwd,
            limit=1 << 22,
            start_new_session=True,
        )
    peer = Peer(proc, name, stderr_path)
    peer._start()
    return peer


@contextlib.asynccontextmanager
async def running(
    argv: Sequence[str], *, name: str, tmp: Path, env: dict[str, str] | None = None, cwd: str | None = None
) -> AsyncIterator[Peer]:
    peer = await spawn(argv, name=name, tmp=tmp, env=env, cwd=cwd)
    try:
        yield peer
    finally:
        await peer.close()


@contextlib.contextmanager
def workdir(prefix: str) -> Any:
    with tempfile.TemporaryDirectory(prefix=f"bench-{prefix}-") as d:
        yield Path(d)


def tree_cpu(pid: int, *, children: bool = True) -> float:
    """CPU seconds (user+system) used so far by pid (and its live descendants)."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        p = psutil.Process(pid)
        procs = [p, *(p.children(recursive=True) if children else [])]
        for q in procs:
            with contextlib.suppress(psutil.Error):
                t = q.cpu_times()
                total += t.user + t.system
    return total


def rss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_info().rss)
    return 0


def uss(pid: int) -> int:
    """Memory unique to the process (what it would free on exit)."""
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_full_info().uss)
    return 0


def table(rows: list[list[str]], head: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(out)
