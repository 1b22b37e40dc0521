"""Against the peers, on the same work: the real agent CLIs behind `agent-bridge` (native
drivers) vs behind the Zed adapters, against the same fake model server.

  claude   `agent-bridge --agent claude` (stream-json driver, real `claude` CLI)
           vs `@zed-industries/claude-agent-acp` (Node; runs the same native `claude`
           through CLAUDE_CODE_EXECUTABLE)
  codex    `agent-bridge --agent codex` (`codex app-server` driver, real `codex` CLI)
           vs `@zed-industries/codex-acp` (Rust, Codex built in)

Every model request gets the same streamed answer (`--chunks` text deltas). Each round starts
fresh processes for every variant (order rotated), then: initialize, session/new, and two
turns in the session (the first may include the agent's own lazy start).

Each variant keeps one home (HOME, CODEX_HOME, the CLIs' config and state) for all its rounds,
as on a user's machine, and runs one untimed round first: an agent's first run ever in a home
does set-up work of its own (`codex` creates its SQLite databases and unpacks its skills:
~140 ms more CPU), which the variants pay at different steps (codex-acp in `initialize`, the
bridge in the first `session/new`, which starts the app-server). `--fresh-home` gives every
round a new home instead: that first run, each time. Measured from the
client: time to the first `agent_message_chunk` carrying the model's text after sending
`session/prompt` (codex-acp first sends a notice of its own, claude-agent-acp an empty
chunk; those are not counted as the first chunk), turn wall
time, and after the turns the RSS of the adapter/daemon process itself and of its whole
process tree (the agent CLIs included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import common as C
from bench.targets import Figures, with_load

BIN = C.AGENTS / "node_modules" / ".bin"
PKG = C.AGENTS / "node_modules"


@dataclass
class Variant:
    name: str
    family: str  # "claude" | "codex"
    argv: Callable[[Path, str], list[str]]  # (tmp, fake server url) -> argv
    env: Callable[[Path, str], dict[str, str]]
    # Which process holds the adapter: the spawned one, or (Node launchers) its child.
    adapter_is_child: bool = False


# -- environments (notes/offline-agents.md; the same ones the tests use) -------------------------
def _offline(home: Path) -> dict[str, str]:
    for d in (home, home / ".config", home / ".cache", home / ".local" / "state"):
        d.mkdir(parents=True, exist_ok=True)
    proxy = "http://127.0.0.1:9"  # refuses: nothing leaves the machine
    return {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "HTTPS_PROXY": proxy,
        "HTTP_PROXY": proxy,
        "NO_PROXY": "127.0.0.1,localhost",
    }


def claude_env(home: Path, url: str) -> dict[str, str]:
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    env = {
        **_offline(home),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # The Zed adapter would otherwise run the older CLI bundled in its SDK.
        "CLAUDE_CODE_EXECUTABLE": str(PKG / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"),
    }
    if os.geteuid() == 0:
        # Root: Claude Code wants this to allow its bypass mode (the bridge never sets it).
        env["IS_SANDBOX"] = "1"
    return env


def codex_env(home: Path, url: str, *, catalog: bool = True) -> dict[str, str]:
    """`catalog`: the model catalog the pinned `codex` CLI reads; codex-acp embeds an older
    Codex that cannot parse it, so it gets the same config without one (as in the tests)."""
    from tests.fakes.openai_responses import codex_config, write_codex_home

    codex_home = home / "codex-home"
    if catalog:
        write_codex_home(codex_home, url)
    else:
        codex_home.mkdir(parents=True, exist_ok=True)
        (codex_home / "config.toml").write_text(codex_config(url, model="mock-model"))
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env = {
        **_offline(home),
        "CODEX_HOME": str(codex_home),
        "FAKE_API_KEY": "fake",
        "TMPDIR": str(home / "tmp"),
    }
    if shutil.which("bwrap") is None:
        resources = (
            PKG / "@openai" / "codex-linux-x64" / "vendor" / "x86_64-unknown-linux-musl" / "codex-resources"
        )
        env["PATH"] = f"{resources}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return env


def _bridge(
    agent: str, command: Path, args: list[str], env_of: Callable[[Path, str], dict[str, str]]
) -> Callable[[Path, str], list[str]]:
    def argv(tmp: Path, url: str) -> list[str]:
        env = env_of(tmp / "home", url)
        cfg = C.bridge_config(
            tmp,
            agents={agent: {"protocol": agent, "command": str(command), "args": args, "env": env}},
            default_agent=None,
            name=f"{agent}.toml",
        )
        return [*C.bridge_argv(tmp, config=cfg), "--agent", agent]

    return argv


VARIANTS = [
    Variant(
        "agent-bridge --agent claude",
        "claude",
        _bridge("claude", BIN / "claude", [], claude_env),
        lambda tmp, url: C.child_env(),
    ),
    Variant(
        "claude-agent-acp (Zed)",
        "claude",
        lambda tmp, url: [str(BIN / "claude-agent-acp")],
        lambda tmp, url: C.child_env(**claude_env(tmp / "home", url)),
    ),
    Variant(
        "agent-bridge --agent codex",
        "codex",
        _bridge("codex", BIN / "codex", ["app-server"], codex_env),
        lambda tmp, url: C.child_env(),
    ),
    Variant(
        "codex-acp (Zed)",
        "codex",
        lambda tmp, url: [str(BIN / "codex-acp")],
        lambda tmp, url: C.child_env(**codex_env(tmp / "home", url, catalog=False)),
        adapter_is_child=True,
    ),
]


def _servers(chunks: int, words: int) -> dict[str, AbstractContextManager[Any]]:
    from tests.fakes.anthropic import anthropic_server
    from tests.fakes.model_server import Reply
    from tests.fakes.openai_responses import responses_server

    text = " ".join(f"word{i}" for i in range(words))
    reply = Reply(text=text, chunks=chunks)
    return {"claude": anthropic_server(default=reply), "codex": responses_server(default=reply)}


def _tree(pid: int) -> list[psutil.Process]:
    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.Error:
        return []


def _link_home(run_dir: Path, home: Path) -> None:
    home.mkdir(exist_ok=True)
    (run_dir / "home").symlink_to(home, target_is_directory=True)


async def one(v: Variant, url: str, tmp: Path, chunks: int, home: Path | None = None) -> dict[str, float]:
    """One round of `v`; `home` (kept between rounds) becomes its home, else a new one."""
    run_dir = tmp / f"run-{time.monotonic_ns()}"
    ws = run_dir / "ws"
    ws.mkdir(parents=True)
    if home is not None:
        _link_home(run_dir, home)
    argv = v.argv(run_dir, url)
    env = v.env(run_dir, url)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    async with C.running(argv, name=v.family, tmp=run_dir, env=env, cwd=str(ws)) as peer:
        try:
            return await _drive(peer, v, ws, out, t0)
        except (ConnectionError, TimeoutError, C.RpcError) as exc:
            raise RuntimeError(f"{v.name}: {exc!r}; its stderr ends with:\n{peer.stderr_tail()}") from None


async def _drive(peer: C.Peer, v: Variant, ws: Path, out: dict[str, float], t0: float) -> dict[str, float]:
    peer.on_request = _allow
    await asyncio.wait_for(peer.initialize(), 120)
    out["initialize"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    sid = (await asyncio.wait_for(peer.new_session(str(ws)), 120))["sessionId"]
    out["session/new"] = time.perf_counter() - t1
    for turn in (1, 2):
        c = peer.counts(sid)
        c.first_chunk_at, c.marker, before = None, "word0", c.chunks
        t2 = time.perf_counter()
        result = await asyncio.wait_for(peer.prompt(sid, f"say something ({turn})"), 180)
        end = time.perf_counter()
        got = c.chunks - before
        if result.get("stopReason") != "end_turn" or got < 1 or c.first_chunk_at is None:
            raise RuntimeError(
                f"{v.name}: turn {turn} ended {result} with {got} chunks; {peer.stderr_tail()}"
            )
        out[f"first chunk {turn}"] = c.first_chunk_at - t2
        out[f"turn {turn}"] = end - t2
        out[f"chunks {turn}"] = got
    procs = _tree(peer.pid)
    top = procs[0] if procs else None
    if v.adapter_is_child and len(procs) > 1:
        top = procs[1]
    out["adapter rss"] = float(top.memory_info().rss) if top else 0.0
    out["tree rss"] = float(sum(_rss(p) for p in procs))
    out["processes"] = float(len(procs))
    return out


def _rss(p: psutil.Process) -> int:
    try:
        return int(p.memory_info().rss)
    except psutil.Error:
        return 0


def _allow(msg: C.JsonObj) -> Any:
    if msg.get("method") == "session/request_permission":
        options = msg.get("params", {}).get("options") or []
        allow = next((o for o in options if str(o.get("kind", "")).startswith("allow")), None)
        if allow is not None:
            return {"outcome": {"outcome": "selected", "optionId": allow["optionId"]}}
        return {"outcome": {"outcome": "cancelled"}}
    return C.RpcError({"code": -32601, "message": "not served by the bench client"})


async def run(
    repeats: int, chunks: int, words: int, families: list[str], fresh_home: bool = False
) -> Figures:
    homes = "a new home each round" if fresh_home else "one home per variant, after an untimed round"
    C.header(f"peers: same fake model answer ({chunks} text deltas), {repeats} rounds, {homes}")
    variants = [v for v in VARIANTS if v.family in families]
    missing = [p for p in ("claude", "claude-agent-acp", "codex", "codex-acp") if not (BIN / p).exists()]
    if missing:
        print(f"   not installed (tools/install-agents.sh): {', '.join(missing)}")
        variants = [v for v in variants if not any(m in " ".join(v.argv(Path("/x"), "u")) for m in missing)]
    servers = _servers(chunks, words)
    results: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    loads: list[float] = []
    with C.workdir("peers") as tmp, servers["claude"] as claude_srv, servers["codex"] as codex_srv:
        urls = {"claude": claude_srv.url, "codex": codex_srv.url}
        by_name = {v.name: v for v in variants}
        home = {v.name: None if fresh_home else tmp / f"home-{i}" for i, v in enumerate(variants)}
        if not fresh_home:
            for v in variants:  # the agents' first run in their homes: not counted
                await one(v, urls[v.family], tmp, chunks, home[v.name])
            print(f"   untimed first round done ({C.load()})")
        for r, order in enumerate(C.rotations([v.name for v in variants], repeats)):
            line = []
            for name in order:
                v = by_name[name]
                m = await one(v, urls[v.family], tmp, chunks, home[name])
                results[name].append(m)
                line.append(
                    f"{name}: first {m['first chunk 1'] * 1000:.0f}/{m['first chunk 2'] * 1000:.0f} ms"
                )
            print(f"   round {r + 1}: " + "; ".join(line) + f"  ({C.load()})")
            loads.append(C.load1())
    keys = [
        ("initialize", "ms"),
        ("session/new", "ms"),
        ("first chunk 1", "ms"),
        ("turn 1", "ms"),
        ("first chunk 2", "ms"),
        ("turn 2", "ms"),
        ("adapter rss", "MiB"),
        ("tree rss", "MiB"),
        ("processes", ""),
    ]
    for family in families:
        names = [v.name for v in variants if v.family == family]
        if not names:
            continue
        rows = []
        for key, unit in keys:
            row = [key]
            for n in names:
                med = C.median([m[key] for m in results[n]])
                row.append(
                    f"{med * 1000:.0f} ms"
                    if unit == "ms"
                    else f"{med / 2**20:.0f} MiB"
                    if unit == "MiB"
                    else f"{med:.0f}"
                )
            if len(names) == 2:
                a = [m[key] for m in results[names[0]]]
                b = [m[key] for m in results[names[1]]]
                row.append(f"{C.median([x / y for x, y in zip(a, b, strict=True) if y]):.2f}x")
            rows.append(row)
        print(C.table(rows, ["median", *names, "bridge / Zed (paired)" if len(names) == 2 else ""]))
    print(f"   {C.load()} at end")
    figures: Figures = {}
    for v in variants:
        side = "bridge" if v.name.startswith("agent-bridge") else "zed"
        for key, name in FIGURE_KEYS.items():
            if results[v.name]:
                figures[f"peers.{v.family}.{side}.{name}"] = C.median([m[key] for m in results[v.name]]) * (
                    1000 if name.endswith("_ms") else 1
                )
    return with_load(figures, "peers", loads)


# The figures `bench all` checks against the targets (bench/targets.py), by measured key.
FIGURE_KEYS = {
    "session/new": "session_new_ms",
    "first chunk 1": "first_chunk1_ms",
    "turn 1": "turn1_ms",
    "adapter rss": "adapter_rss_b",
    "tree rss": "tree_rss_b",
}


def main(argv: list[str]) -> Figures:
    ap = argparse.ArgumentParser(prog="python -m bench peers", description=__doc__)
    ap.add_argument("-r", "--repeats", type=int, default=5)
    ap.add_argument("--chunks", type=int, default=200, help="text deltas in each model answer")
    ap.add_argument("--words", type=int, default=400)
    ap.add_argument("--only", default="claude,codex", help="claude, codex or both")
    ap.add_argument(
        "--fresh-home",
        action="store_true",
        help="a new home each round: every start is the agent's first run",
    )
    a = ap.parse_args(argv)
    return asyncio.run(run(a.repeats, a.chunks, a.words, a.only.split(","), a.fresh_home))
