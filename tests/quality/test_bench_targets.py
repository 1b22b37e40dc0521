"""`bench/targets.py`: met / not met from given figures (the logic of `python -m bench all`'s
table; the figures themselves are measurements, never asserted)."""

from __future__ import annotations

import pytest

from bench.targets import TARGETS, Target, evaluate, with_load

RELAY = Target("relay", "relay.x", "relay", limit=1.15, unit="x")
AGAINST = Target("startup", "startup.bridge_ms", "startup", against="startup.peer_ms", unit="ms")
HALF = Target("rss", "peers.bridge_b", "peers", against="peers.zed_b", factor=0.5, unit="MiB")
FLOOR = Target("appends", "store.rate", "store", limit=50_000, at_least=True, unit="/s")


def verdicts(figures: dict[str, float], *targets: Target) -> list[bool | None]:
    return [r.met for r in evaluate(figures, targets)]


def test_a_constant_limit_is_met_at_or_below_it() -> None:
    assert verdicts({"relay.x": 1.15}, RELAY) == [True]
    assert verdicts({"relay.x": 1.16}, RELAY) == [False]


def test_a_limit_from_another_figure_of_the_same_run() -> None:
    assert verdicts({"startup.bridge_ms": 90.0, "startup.peer_ms": 100.0}, AGAINST) == [True]
    assert verdicts({"startup.bridge_ms": 101.0, "startup.peer_ms": 100.0}, AGAINST) == [False]
    rows = evaluate({"peers.bridge_b": 40.0, "peers.zed_b": 79.0}, (HALF,))
    assert rows[0].limit == 39.5 and rows[0].met is False


def test_a_throughput_must_reach_its_floor() -> None:
    assert verdicts({"store.rate": 50_000.0}, FLOOR) == [True]
    assert verdicts({"store.rate": 49_999.0}, FLOOR) == [False]


def test_a_missing_figure_is_not_measured_never_met() -> None:
    assert verdicts({}, RELAY, AGAINST) == [None, None]
    assert verdicts({"startup.bridge_ms": 1.0}, AGAINST) == [None]  # the peer's figure is missing
    cells = evaluate({}, (RELAY,))[0].cells()
    assert cells[1] == "-" and cells[3] == "not measured"


def test_the_load_shown_is_the_bench_s_own() -> None:
    figures = with_load({"relay.x": 1.0}, "relay", [2.5, 1.25, 3.0])
    with_load(figures, "startup", [7.0])
    assert evaluate(figures, (RELAY,))[0].load == "1.2-3.0"
    assert evaluate(figures, (FLOOR,))[0].load == "-"


def test_every_issue_target_is_in_the_table() -> None:
    values = {t.value for t in TARGETS}
    for key in (
        "relay.bridge_over_relay_x",
        "startup.bridge_bare_ms",
        "startup.bridge_native_ms",
        "latency.added_p50_ms",
        "peers.codex.bridge.session_new_ms",
        "peers.codex.bridge.turn1_ms",
        "peers.codex.bridge.tree_rss_b",
        "peers.claude.bridge.first_chunk1_ms",
        "peers.claude.bridge.turn1_ms",
        "peers.claude.bridge.adapter_rss_b",
        "scale.cpu_per_chunk_us",
        "scale.per_session_b",
        "store.appends_per_s_2000",
    ):
        assert key in values, key


def test_bench_all_help_and_unknown_options_do_not_start_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `bench all -h` once started the 25-minute run instead of printing its usage.
    from bench.__main__ import main

    assert main(["all", "-h"]) == 0
    assert "usage: python -m bench all" in capsys.readouterr().out
    assert main(["all", "--qiuck"]) == 2
    assert "unknown option(s) --qiuck" in capsys.readouterr().err
