"""Several messages per row of the event log, for both backends (schema version 4).

A row `(session_id, seq, n, at, direction, message)` holds the `n` consecutive messages
`seq - n + 1 .. seq` of one session: the key is the row's LAST seq, so every query by seq
range (`seq > after ORDER BY seq`, `MAX(seq)`) is the one a row per message had, and rows
written before version 4 are simply rows with `n = 1`. With `n > 1` the message column is
the messages joined by `\\n`.

Only messages that cannot be told apart by the join are packed together: same session and
direction, the same `at` (milliseconds: each event keeps its own time exactly), committed in
the same transaction, and no `\\n` in any of them. Every producer logs one JSON line without
raw newlines (orjson output, or an agent's line as framed by its newline), so in practice
only a message with a raw newline (a pretty-printed frame a WebSocket client sent) or one
past `MAX_BYTES` stands alone. A row holds at most `MAX_MESSAGES` messages, so a read with
a small `limit` never drags a large row along.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import itemgetter

from bridge.errors import StoreError
from bridge.store.base import Direction, Event

MAX_MESSAGES = 64
MAX_BYTES = 256 * 1024

# One session's queued message: (session id, at, direction, message), as the stores queue them.
Queued = tuple[str, str, str, bytes]
# A row to insert: (k, n, at, direction, message). `k` is the position of its last message
# among the session's messages in the batch (1-based): the store adds the session's head.
Packed = tuple[int, int, str, str, bytes]
# A row read back: (seq, n, at, direction, message).
Stored = tuple[int, int, str, Direction, bytes]

_LIKE = itemgetter(1, 2)  # (at, direction): what messages sharing a row have in common


def pack(rows: Sequence[Queued]) -> list[Packed]:
    """One session's messages of one commit, in order, as rows to insert: greedily, each
    row takes as many of the next like messages as the rules above allow."""
    out: list[Packed] = []
    k = 0
    # Per message, only C loops (groupby, join, count): this runs for every logged message.
    for (at, direction), group in groupby(rows, _LIKE):
        messages = [r[3] for r in group]
        i, end = 0, len(messages)
        while i < end:
            chunk = messages[i : i + MAX_MESSAGES]
            joined = b"\n".join(chunk)
            if len(chunk) > 1 and (len(joined) >= MAX_BYTES or joined.count(b"\n") != len(chunk) - 1):
                chunk = _packable_prefix(chunk)
                joined = b"\n".join(chunk)
            i += len(chunk)
            k += len(chunk)
            out.append((k, len(chunk), at, direction, joined))
    return out


def _packable_prefix(chunk: list[bytes]) -> list[bytes]:
    """The longest start of `chunk` (one message at least) that may share a row."""
    size = -1
    for i, message in enumerate(chunk):
        size += len(message) + 1
        if b"\n" in message or size >= MAX_BYTES:
            return chunk[: max(i, 1)]
    return chunk


def unpack(rows: Iterable[Stored], after: int, limit: int) -> list[Event]:
    """The events of `rows` (a query's `seq > after ORDER BY seq LIMIT limit`: every row
    holds at least one message past `after`, so `limit` rows are enough) past `after`, at
    most `limit` of them (a negative `limit`: all, as SQLite's `LIMIT -1`)."""
    out: list[Event] = []
    for seq, n, at, direction, message in rows:
        if n == 1:
            out.append(Event(seq, at, direction, bytes(message)))
            continue
        parts = bytes(message).split(b"\n")
        if len(parts) != n:
            raise StoreError(f"the event log row ending at seq {seq} holds {len(parts)} messages, not {n}")
        first = seq - n + 1
        skip = max(0, after + 1 - first)
        out.extend(Event(first + i, at, direction, parts[i]) for i in range(skip, n))
    return out if limit < 0 else out[:limit]
