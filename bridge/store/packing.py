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


def pack(rows: Sequence[Queued]) -> list[Packed]:
    """One session's messages of one commit, in order, as rows to insert."""
    out: list[Packed] = []
    if not rows:
        return out
    _, at0, dir0, first = rows[0]
    run = [first]
    size = len(first)
    # A message with a newline can neither start a run others join nor join one.
    open_ = b"\n" not in first and size < MAX_BYTES
    k = 1
    for _, at, direction, message in rows[1:]:
        if (
            open_
            and at == at0
            and direction == dir0
            and len(run) < MAX_MESSAGES
            and size + len(message) < MAX_BYTES
            and b"\n" not in message
        ):
            run.append(message)
            size += len(message) + 1
            k += 1
            continue
        out.append((k, len(run), at0, dir0, b"\n".join(run) if len(run) > 1 else run[0]))
        at0, dir0, run, size = at, direction, [message], len(message)
        open_ = b"\n" not in message and size < MAX_BYTES
        k += 1
    out.append((k, len(run), at0, dir0, b"\n".join(run) if len(run) > 1 else run[0]))
    return out


def unpack(rows: Iterable[Stored], after: int, limit: int) -> list[Event]:
    """The events of `rows` (a query's `seq > after ORDER BY seq LIMIT limit`: every row
    holds at least one message past `after`, so `limit` rows are enough) past `after`, at
    most `limit` of them."""
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
        if len(out) >= limit:
            break
    return out[:limit]
