"""Two daemons creating one new store file at the same moment both open it: SQLite refuses
the switch to WAL with "database is locked" without waiting while the other process makes it,
which once left one of two daemons started together on a failed in-memory store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

OPENER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from bridge.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[2])
while not os.path.exists(sys.argv[3]):  # both start together
    time.sleep(0.0005)
store.open_sync()
print("opened")
"""


def test_two_processes_creating_one_store_at_once_both_open_it(tmp_path: Path) -> None:
    failures = []
    for i in range(25):
        db, go = tmp_path / f"s{i}" / "sessions.db", tmp_path / f"go{i}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, str(ROOT), str(db), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        go.touch()
        for p in procs:
            out, err = p.communicate(timeout=60)
            if p.returncode != 0 or out.strip() != "opened":
                failures.append(err[-500:])
    assert failures == []
