"""A session's usage counters (`_bridge/session/metrics`), kept in the catalog so they
outlive the daemon that counted them and survive reopening.

What is counted, and why so:
- `turns`: prompts sent to the agent.
- `messages`, `toolCalls`, `toolUsage`, cost: from the agent's `session/update`s *during
  turns* — the history an agent replays on `session/load` (its old `usage_update`s too) is
  not new work, and counting it would grow the numbers at every reopening.
- `tokens`: the per-turn `usage` of each prompt's answer (ACP's unstable `Usage`), added once
  per turn. `thought` is the reasoning share where the agent reports it (Codex); like the
  providers, it is part of `output`, not on top of it.
- cost: ACP's `usage_update.cost` is the agent session's *cumulative* cost. Agents differ
  on what that means after a restart: Claude Code restores it when it resumes a session (its
  first answer after `--resume` includes the earlier turns), other agents count from zero
  in each process. So the latest value is the agent session's cost; a value lower than the
  last one (or in another currency) means the agent counted from zero again, and the last
  value is kept as spent; a new agent session (a continuation, bridge/core/continuation.py)
  starts a new count too. Tested with Claude Code across a daemon restart
  (tests/adapters/claude/test_metrics_real.py) and the fake agent's per-process count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bridge.wire.types import JsonObj

TOKEN_KEYS = (
    ("input", "inputTokens"),
    ("output", "outputTokens"),
    ("thought", "thoughtTokens"),
    ("cachedRead", "cachedReadTokens"),
    ("cachedWrite", "cachedWriteTokens"),
    ("total", "totalTokens"),
)


def _zero_tokens() -> dict[str, int]:
    return {ours: 0 for ours, _ in TOKEN_KEYS}


@dataclass
class Metrics:
    turns: int = 0
    messages: int = 0
    tool_calls: int = 0
    tool_usage: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, int] = field(default_factory=_zero_tokens)
    # Cost of the agent's earlier counts, by currency; and the current count's latest
    # cumulative value (amount, currency).
    cost_done: dict[str, float] = field(default_factory=dict)
    cost_run: tuple[float, str] | None = None
    _tool_ids: set[Any] = field(default_factory=set)

    # -- counting ------------------------------------------------------------------------------
    def observe(self, update: JsonObj, *, in_turn: bool) -> None:
        if not in_turn:
            return
        kind = update.get("sessionUpdate")
        if kind == "usage_update":
            self._cost(update.get("cost"))
        self.messages += 1
        if kind == "tool_call" or (
            kind == "tool_call_update" and update.get("toolCallId") not in self._tool_ids
        ):
            # Some agents (Gemini asking permission first) only ever send updates for a call.
            self._tool_ids.add(update.get("toolCallId"))
            self.tool_calls += 1
            meta = update.get("_meta")
            bridge_meta = meta.get("bridge") if isinstance(meta, dict) else None
            name = update.get("name") or (
                bridge_meta.get("toolName") if isinstance(bridge_meta, dict) else None
            )
            self.tool_usage[str(name or update.get("kind") or "other")] += 1

    def absorb_usage(self, result: JsonObj) -> None:
        """A turn's answer: its `usage` counts once."""
        usage = result.get("usage")
        if not isinstance(usage, dict):
            return
        for ours, theirs in TOKEN_KEYS:
            value = usage.get(theirs)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                self.tokens[ours] += value

    def _cost(self, cost: Any) -> None:
        if not isinstance(cost, dict):
            return
        amount, currency = cost.get("amount"), cost.get("currency")
        if not isinstance(amount, int | float) or isinstance(amount, bool) or not isinstance(currency, str):
            return
        run = self.cost_run
        if run is not None and (currency != run[1] or amount < run[0]):
            self.new_count()  # the agent counts from zero again (or in another currency)
        self.cost_run = (float(amount), currency)

    def new_count(self) -> None:
        """The agent's cumulative cost starts again (a new agent session): what the previous
        count reached is spent."""
        if self.cost_run is not None:
            amount, currency = self.cost_run
            self.cost_done[currency] = self.cost_done.get(currency, 0.0) + amount
            self.cost_run = None

    def costs(self) -> dict[str, float]:
        total = dict(self.cost_done)
        if self.cost_run is not None:
            amount, currency = self.cost_run
            total[currency] = total.get(currency, 0.0) + amount
        return total

    # -- the wire and the catalog --------------------------------------------------------------
    def result(self) -> JsonObj:
        """`_bridge/session/metrics`, without the process figures."""
        out: JsonObj = {
            "turns": self.turns,
            "messages": self.messages,
            "toolCalls": self.tool_calls,
            "toolUsage": dict(self.tool_usage),
            "tokens": dict(self.tokens),
        }
        costs = self.costs()
        if costs:
            # One currency in practice; `cost` is the latest run's, `costs` has them all.
            currency = self.cost_run[1] if self.cost_run is not None else next(iter(costs))
            out["cost"] = {"amount": round(costs[currency], 10), "currency": currency}
            out["costs"] = [{"amount": round(a, 10), "currency": c} for c, a in sorted(costs.items())]
            if "USD" in costs:
                out["costUsd"] = round(costs["USD"], 10)
        return out

    def to_json(self) -> JsonObj:
        return {
            "turns": self.turns,
            "messages": self.messages,
            "toolCalls": self.tool_calls,
            "toolUsage": dict(self.tool_usage),
            "tokens": dict(self.tokens),
            "costDone": dict(self.cost_done),
            "costRun": list(self.cost_run) if self.cost_run is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> Metrics:
        """From the catalog; a session from before metrics were stored starts at zero, and a
        value that is not what this code writes is ignored (never a failure to open)."""
        m = cls()
        if not isinstance(data, dict):
            return m
        m.turns = _int(data.get("turns"))
        m.messages = _int(data.get("messages"))
        m.tool_calls = _int(data.get("toolCalls"))
        usage = data.get("toolUsage")
        if isinstance(usage, dict):
            m.tool_usage = Counter({str(k): _int(v) for k, v in usage.items()})
        tokens = data.get("tokens")
        if isinstance(tokens, dict):
            for ours, _ in TOKEN_KEYS:
                m.tokens[ours] = _int(tokens.get(ours))
        done = data.get("costDone")
        if isinstance(done, dict):
            m.cost_done = {str(k): float(v) for k, v in done.items() if isinstance(v, int | float)}
        run = data.get("costRun")
        if (
            isinstance(run, list)
            and len(run) == 2
            and isinstance(run[0], int | float)
            and isinstance(run[1], str)
        ):
            m.cost_run = (float(run[0]), run[1])
        return m


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
