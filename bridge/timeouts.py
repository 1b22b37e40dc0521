"""The default timeouts and graces, each named once.

The config file (`bridge/config.py`) may override most of them; the code that applies them
takes these as its defaults, so a default changed here is changed everywhere. Seconds.
"""

from __future__ import annotations

# An agent: its `initialize` (and, for Codex, opening the thread) must be answered by then.
HANDSHAKE_TIMEOUT = 30.0
# A stopping agent (or daemon) gets this long after EOF, then after SIGTERM, before the next step.
STOP_GRACE = 2.0
# A turn whose agent sends nothing for this long is ended (config `stall_timeout`).
STALL_TIMEOUT = 600.0
# After `session/cancel`, how long the agent has to end the turn before the bridge ends it.
CANCEL_GRACE = 10.0
# A session whose last client went away is kept running this long for a reconnect.
DISCONNECT_GRACE = 60.0
# A daemon silent for this long loses its sessions' leases (spec/durability.md).
LEASE_TIMEOUT = 30.0
# `--version` of an agent binary.
VERSION_TIMEOUT = 10.0
# The client library: how long a daemon it started gets to exit once asked.
CLIENT_SHUTDOWN_TIMEOUT = 30.0
