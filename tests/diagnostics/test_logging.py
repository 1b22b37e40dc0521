"""Logging: one file per day in <state-dir>/logs, old days pruned, secrets masked in every
record, `--log-level` for stderr."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge import logsetup
from bridge.diagnostics.redact import default as default_redactor
from tests.conftest import bridge_cmd, subprocess_env


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards (logsetup configures the process's root)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in root.handlers:
        if h not in handlers:
            root.removeHandler(h)
            h.close()
    root.setLevel(level)


def test_daily_file_with_redaction(tmp_path: Path, root_logger: logging.Logger) -> None:
    default_redactor().add(["file-log-secret-123456"])
    directory = logsetup.configure_file(str(tmp_path / "state"), None)
    assert directory == str(tmp_path / "state" / "logs")
    log = logging.getLogger("bridge.test")
    log.info("agent said %s and sk-ant-api03-ABCDEFGHIJKLMNOP", "file-log-secret-123456")
    log.debug("not at the default level")
    try:
        raise RuntimeError("failure with file-log-secret-123456 inside")
    except RuntimeError:
        log.exception("it failed")
    (path,) = Path(directory).glob("agent-bridge-*.log")
    assert path.name == f"agent-bridge-{time.strftime('%Y-%m-%d')}.log"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "agent said *** and ***" in text and f" {os.getpid()} INFO bridge.test" in text
    assert "file-log-secret-123456" not in text and "sk-ant-api03" not in text
    assert "RuntimeError: failure with *** inside" in text
    assert "not at the default level" not in text


def test_old_days_are_pruned(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    now = time.time()
    days = [time.strftime("%Y-%m-%d", time.localtime(now - d * 86400)) for d in range(12)]
    for day in days:
        (logs / f"agent-bridge-{day}.log").write_text("x\n")
    (logs / "notes.txt").write_text("keep me\n")
    removed = logsetup.prune(str(logs), keep_days=7, now=now)
    assert sorted(removed) == sorted(f"agent-bridge-{d}.log" for d in days[7:])
    left = sorted(p.name for p in logs.iterdir())
    assert left == sorted(["notes.txt", *(f"agent-bridge-{d}.log" for d in days[:7])])


def test_log_level_flag_and_file_from_the_daemon(tmp_path: Path) -> None:
    """`--log-level debug` shows debug lines on stderr; the file stays at info."""
    state = tmp_path / "state"
    done = subprocess.run(
        [*bridge_cmd(), "--state-dir", str(state), "--log-level", "debug"],
        input=b"",
        capture_output=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert done.returncode == 0, done.stderr
    assert b" DEBUG " in done.stderr
    (path,) = (state / "logs").glob("agent-bridge-*.log")
    assert " DEBUG " not in path.read_text()


def test_bad_level_is_one_clear_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [*bridge_cmd(), "--state-dir", str(tmp_path), "--log-level", "loud"],
        input=b"",
        capture_output=True,
        timeout=60,
        env=subprocess_env(),
    )
    assert b"unknown log level 'loud'" in done.stderr
