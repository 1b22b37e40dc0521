"""Logging: stderr at `--log-level` (default warning), and for the daemon one file per day
in `<state-dir>/logs/agent-bridge-YYYY-MM-DD.log` at the config's `log_level` (default
info), files older than `log_keep_days` deleted at start. Every record is redacted
(`bridge.diagnostics.redact`) before any handler writes it.

Several daemons (one per editor window) may share a state dir: each appends whole lines to
the same day's file (O_APPEND) and tags them with its pid; nothing renames files under the
others' feet, which is why this is not a `TimedRotatingFileHandler`.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from typing import TextIO

from bridge.diagnostics.redact import default as default_redactor

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FILE_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
DEFAULT_STDERR_LEVEL = "warning"
DEFAULT_FILE_LEVEL = "info"
KEEP_DAYS = 7
FILE_NAME = re.compile(r"^agent-bridge-(\d{4}-\d{2}-\d{2})\.log$")


class LevelError(ValueError):
    pass


def parse_level(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    if not isinstance(level, int):
        raise LevelError(f"unknown log level {name!r}: use debug, info, warning or error")
    return level


class RedactingFilter(logging.Filter):
    """Masks secrets in the formatted message (arguments included) and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = default_redactor()
        message = record.getMessage()
        clean = redactor.text(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        return True


class DailyFileHandler(logging.Handler):
    """Appends to `agent-bridge-<local date>.log` in `directory`, switching at midnight."""

    def __init__(self, directory: str, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.directory = directory
        self._day = ""
        self._file: TextIO | None = None

    def _stream(self) -> TextIO:
        day = time.strftime("%Y-%m-%d")
        if day != self._day or self._file is None:
            if self._file is not None:
                self._file.close()
            path = os.path.join(self.directory, f"agent-bridge-{day}.log")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._file = os.fdopen(fd, "a", encoding="utf-8")
            self._day = day
        return self._file

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = self._stream()
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
        finally:
            self.release()
        super().close()


def prune(directory: str, keep_days: int, now: float | None = None) -> list[str]:
    """Delete the day files older than `keep_days` days; returns the names removed."""
    today = time.strftime("%Y-%m-%d", time.localtime(now))
    cutoff = time.strftime("%Y-%m-%d", time.localtime((now or time.time()) - keep_days * 86400))
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = FILE_NAME.match(name)
        if m and m.group(1) <= cutoff and m.group(1) != today:
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def configure_stderr(level: str | None) -> None:
    """The stderr handler (all commands). `level`: `--log-level`, else
    `AGENT_BRIDGE_LOG_LEVEL`, else warning."""
    name = level or os.environ.get("AGENT_BRIDGE_LOG_LEVEL") or DEFAULT_STDERR_LEVEL
    root = logging.getLogger()
    try:
        stderr_level = parse_level(name)
    except LevelError as exc:
        stderr_level = logging.WARNING
        sys.stderr.write(f"agent-bridge: {exc}; using warning\n")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(stderr_level)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root.addHandler(handler)
    root.setLevel(stderr_level)


def configure_file(state_dir: str, level: str | None, keep_days: int = KEEP_DAYS) -> str | None:
    """Add the daily log file (the daemon only). Returns its directory, or None when the
    state dir cannot hold it (then stderr is all there is, and it says so)."""
    directory = os.path.join(state_dir, "logs")
    try:
        file_level = parse_level(level or DEFAULT_FILE_LEVEL)
    except LevelError as exc:
        logging.getLogger(__name__).warning("log file: %s; using info", exc)
        file_level = logging.INFO
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        logging.getLogger(__name__).warning("no log file: cannot create %s: %s", directory, exc)
        return None
    prune(directory, keep_days)
    handler = DailyFileHandler(directory, file_level)
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    # The root passes records down to the most verbose handler's level.
    root.setLevel(min(root.level or logging.WARNING, file_level))
    from bridge import __version__

    # Marks each daemon's start in the shared day file (pid, argv: which editor launched
    # what); the file only: stderr stays the place for problems.
    args = (__version__, " ".join(sys.argv))
    handler.handle(
        logging.LogRecord("bridge", logging.INFO, __file__, 0, "agent-bridge %s started: %s", args, None)
    )
    return directory
