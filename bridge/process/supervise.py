"""Daemon-level process supervision: child subreaper, so agents' orphaned descendants are
re-parented to us (and reaped or swept) instead of escaping to init."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return int(libc.prctl(option, arg, 0, 0, 0)) == 0


def become_subreaper() -> bool:
    ok = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if not ok:
        log.info("could not become a child subreaper; orphan sweeps rely on the env marker only")
    return ok
