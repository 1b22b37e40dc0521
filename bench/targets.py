"""The targets of issue 17 (and the figures already met that must not regress), in one place.

Every bench's `main()` returns its figures as a flat `Figures` dict (medians; milliseconds
`_ms`, microseconds `_us`, bytes `_b`, ratios `_x`) and the load it ran at (`load_min.<bench>`
and `load_max.<bench>`, the 1-minute load average; `with_load` adds them). `evaluate` turns the figures of one run into one row
per target: the measured value, the limit (a constant, or another figure of the same run times
a factor), met or not, and the load. `python -m bench all` prints that table; a target whose
figures were not measured (a peer not installed, a bench left out) says so, never "met".
"""

from __future__ import annotations

from dataclasses import dataclass

Figures = dict[str, float]


@dataclass(frozen=True)
class Target:
    name: str
    value: str  # the figure measured
    bench: str  # whose load is shown
    limit: float | None = None  # a constant limit...
    against: str | None = None  # ...or another figure of the same run
    factor: float = 1.0  # limit = factor * against
    at_least: bool = False  # the value must be ≥ the limit (throughput), not ≤ (cost)
    unit: str = ""

    def describe(self) -> str:
        op = "≥" if self.at_least else "≤"
        if self.against is None:
            return f"{op} {_fmt(self.limit, self.unit)}"
        times = "" if self.factor == 1.0 else f"{self.factor:g} * "
        return f"{op} {times}{self.against}"


TARGETS: tuple[Target, ...] = (
    Target(
        "streaming 20k chunks: bridge ÷ byte relay (wall)",
        "relay.bridge_over_relay_x",
        "relay",
        limit=1.15,
        unit="x",
    ),
    Target(
        "spawn → initialize, no default agent",
        "startup.bridge_bare_ms",
        "startup",
        against="startup.codex_acp_ms",
        unit="ms",
    ),
    Target(
        "spawn → initialize, --agent codex (native)",
        "startup.bridge_native_ms",
        "startup",
        against="startup.codex_acp_ms",
        unit="ms",
    ),
    Target(
        "spawn → initialize, --agent (an ACP agent, probed)",
        "startup.bridge_acp_agent_ms",
        "startup",
        against="startup.codex_acp_ms",
        unit="ms",
    ),
    Target(
        "request latency added at p50 (set_config_option)",
        "latency.added_p50_ms",
        "latency",
        limit=0.3,
        unit="ms",
    ),
    Target(
        "Codex session/new",
        "peers.codex.bridge.session_new_ms",
        "peers",
        against="peers.codex.zed.session_new_ms",
        unit="ms",
    ),
    Target(
        "Codex first turn",
        "peers.codex.bridge.turn1_ms",
        "peers",
        against="peers.codex.zed.turn1_ms",
        unit="ms",
    ),
    Target(
        "Codex process tree RSS",
        "peers.codex.bridge.tree_rss_b",
        "peers",
        against="peers.codex.zed.tree_rss_b",
        unit="MiB",
    ),
    Target(
        "Claude first chunk (turn 1)",
        "peers.claude.bridge.first_chunk1_ms",
        "peers",
        against="peers.claude.zed.first_chunk1_ms",
        unit="ms",
    ),
    Target(
        "Claude first turn",
        "peers.claude.bridge.turn1_ms",
        "peers",
        against="peers.claude.zed.turn1_ms",
        unit="ms",
    ),
    Target(
        "Claude daemon RSS ≤ half of claude-agent-acp's",
        "peers.claude.bridge.adapter_rss_b",
        "peers",
        against="peers.claude.zed.adapter_rss_b",
        factor=0.5,
        unit="MiB",
    ),
    # The 1-session figure of the same run, same turn length and accounting (bench/scale.py):
    # relay's 20,000-chunk turn spreads the turn's own cost (~1.2 ms) over 40x more chunks.
    Target(
        "200 streaming sessions: daemon CPU per chunk ≤ 1 session's (same K, same run)",
        "scale.cpu_per_chunk_us",
        "scale",
        against="scale.solo_cpu_per_chunk_us",
        unit="µs",
    ),
    Target(
        "no regression: memory per idle session",
        "scale.per_session_b",
        "scale",
        limit=0.5 * 2**20,
        unit="KiB",
    ),
    Target(
        "no regression: log appends/s, flush every 2000",
        "store.appends_per_s_2000",
        "store",
        limit=50_000,
        at_least=True,
        unit="/s",
    ),
)


@dataclass(frozen=True)
class Row:
    target: Target
    value: float | None
    limit: float | None
    met: bool | None  # None: not measured
    load: str

    def cells(self) -> list[str]:
        t = self.target
        verdict = "not measured" if self.met is None else "met" if self.met else "NOT met"
        return [
            t.name,
            _fmt(self.value, t.unit),
            f"{t.describe()} ({_fmt(self.limit, t.unit)})",
            verdict,
            self.load,
        ]


def with_load(figures: Figures, bench: str, loads: list[float]) -> Figures:
    """`figures` with the load range `bench` ran at."""
    if loads:
        figures[f"load_min.{bench}"], figures[f"load_max.{bench}"] = min(loads), max(loads)
    return figures


def evaluate(figures: Figures, targets: tuple[Target, ...] = TARGETS) -> list[Row]:
    rows = []
    for t in targets:
        value = figures.get(t.value)
        base = t.limit if t.against is None else figures.get(t.against)
        limit = None if base is None else base * t.factor
        met = None if value is None or limit is None else (value >= limit if t.at_least else value <= limit)
        low, high = figures.get(f"load_min.{t.bench}"), figures.get(f"load_max.{t.bench}")
        load = "-" if low is None or high is None else f"{low:.1f}-{high:.1f}"
        rows.append(Row(t, value, limit, met, load))
    return rows


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "MiB":
        return f"{v / 2**20:.0f} MiB"
    if unit == "KiB":
        return f"{v / 2**10:.0f} KiB"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "ms":
        return f"{v:.3f} ms" if v < 10 else f"{v:.0f} ms"
    if unit == "/s":
        return f"{v:,.0f}/s"
    return f"{v:.1f} {unit}".strip()
