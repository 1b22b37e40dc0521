"""Newline-delimited JSON framing, sans I/O.

`LineDecoder` turns arbitrary byte chunks into complete lines. A line longer than
`max_line` is never buffered whole: its first bytes are kept (so the caller can still read
an `id` for the error it answers) and the rest is skipped up to the next newline. Memory is
bounded by `max_line` whatever the peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_LINE = 16 * 1024 * 1024
_HEAD = 4096


@dataclass(frozen=True)
class Oversize:
    """A line that exceeded the limit; `head` is its first bytes."""

    head: bytes
    size: int


class LineDecoder:
    __slots__ = ("_buf", "_max", "_skip_head", "_skip_size", "_skipping")

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = bytearray()
        self._max = max_line
        self._skipping = False
        self._skip_head = b""
        self._skip_size = 0

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        """Return every complete line in `data` (without the newline; blank lines dropped)."""
        out: list[bytes | Oversize] = []
        if self._skipping:
            nl = data.find(b"\n")
            if nl < 0:
                self._skip_size += len(data)
                return out
            out.append(Oversize(self._skip_head, self._skip_size + nl))
            self._skipping = False
            self._skip_head = b""
            data = data[nl + 1 :]
        buf = self._buf
        buf += data
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            if nl - start > self._max:
                out.append(Oversize(bytes(buf[start : start + _HEAD]), nl - start))
            elif nl > start:
                line = bytes(buf[start:nl])
                if line.strip():
                    out.append(line.rstrip(b"\r"))
            start = nl + 1
        del buf[:start]
        if len(buf) > self._max:
            self._skipping = True
            self._skip_head = bytes(buf[:_HEAD])
            self._skip_size = len(buf)
            buf.clear()
        return out

    def pending(self) -> int:
        return len(self._buf)
