"""The WebSocket gate: pure checks of an HTTP upgrade request, run before any upgrade.

Three layers, all required (see spec/websocket.md and the incidents in the security notes:
CVE-2025-52882, CVE-2025-49596, DNS rebinding):

- `Host` must name the daemon exactly: a loopback name or address with the bound port, or an
  entry of `--allow-host`. Compared whole and case-insensitively — no prefix, suffix or
  "starts with 127." matching, no trailing dot, empty or repeated → refused. This is what
  stops DNS rebinding, where a page's own hostname resolves to 127.0.0.1.
- `Origin`, when present, must be one of `--allow-origin` exactly; `null` never passes.
  Browsers always send it; native clients usually do not. A page in the user's browser is
  refused here even before its (impossible) token check.
- `Authorization: Bearer <token>`, compared in constant time. Nowhere else: not in the query
  string, not as Basic credentials, not in a cookie. The optional observer token passes the
  gate too, and its connection is read-only (`granted`).

No I/O here, and nothing from the request is echoed back; the reasons are safe to log (they
never contain the token).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

PATH = "/acp"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")

# scheme://host[:port], nothing else (no path, no trailing slash, no wildcard).
_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$", re.IGNORECASE)
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")
_BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)


class GateConfigError(ValueError):
    """A bad `--allow-origin` / `--allow-host` value; the message is one line for stderr."""


@dataclass(frozen=True)
class Policy:
    token: str
    port: int
    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()  # lower-cased, exact `name` or `name:port`
    # `--observer-token-file`: a second token that grants read-only access.
    observer_token: str | None = None

    @classmethod
    def build(
        cls,
        token: str,
        port: int,
        origins: Iterable[str] = (),
        hosts: Iterable[str] = (),
        observer_token: str | None = None,
    ) -> Policy:
        allowed_hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
        allowed_hosts.update(h.lower() for h in hosts)
        return cls(token, port, frozenset(origins), frozenset(allowed_hosts), observer_token)

    def __repr__(self) -> str:  # keeps the tokens out of any log or traceback
        return f"Policy(port={self.port}, tokens=<redacted>)"


@dataclass(frozen=True)
class Refusal:
    status: HTTPStatus
    reason: str  # for the log and the response body; never contains a secret

    @property
    def body(self) -> str:
        return f"{self.status.phrase}: {self.reason}\n"


def check_origin_option(value: str) -> str:
    if value == "null":
        raise GateConfigError("--allow-origin null is never allowed: sandboxed frames and file pages send it")
    if not _ORIGIN.match(value):
        raise GateConfigError(
            f"--allow-origin {value!r} is not an origin; give scheme://host[:port] exactly as browsers send it"
        )
    return value


def check_host_option(value: str) -> str:
    if not _HOST.match(value) or value.endswith("."):
        raise GateConfigError(f"--allow-host {value!r} is not a host; give name or name:port")
    return value


def check(policy: Policy, path: str, headers: Sequence[tuple[str, str]]) -> Refusal | None:
    """None when the request may be upgraded, else why not. `headers` are the raw header
    fields in order (repeated names kept, so duplicates can be refused)."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)

    hosts = values.get("host", [])
    if len(hosts) != 1:
        return Refusal(HTTPStatus.FORBIDDEN, "exactly one Host header is required")
    host = hosts[0].strip().lower()
    if host not in policy.hosts:
        return Refusal(HTTPStatus.FORBIDDEN, "Host is not this daemon's loopback address (see --allow-host)")

    if path.split("?", 1)[0] != PATH:
        return Refusal(HTTPStatus.NOT_FOUND, f"the ACP endpoint is {PATH}")

    origins = values.get("origin", [])
    if len(origins) > 1:
        return Refusal(HTTPStatus.FORBIDDEN, "more than one Origin header")
    if origins and origins[0] not in policy.origins:
        # Includes "null" (it can never be allowed).
        return Refusal(HTTPStatus.FORBIDDEN, "Origin not allowed (see --allow-origin)")

    auth = values.get("authorization", [])
    if len(auth) != 1:
        return Refusal(HTTPStatus.UNAUTHORIZED, "a bearer token is required: Authorization: Bearer <token>")
    m = _BEARER.match(auth[0])
    if m is None:
        return Refusal(HTTPStatus.UNAUTHORIZED, "only Authorization: Bearer <token> is accepted")
    if access(policy, m.group(1)) is None:
        return Refusal(HTTPStatus.UNAUTHORIZED, "wrong token")
    return None


def access(policy: Policy, token: str) -> str | None:
    """`"full"` for the token, `"observer"` for the observer token, else None. Both are
    compared, in constant time, whichever matches."""
    given = token.encode()
    full = hmac.compare_digest(given, policy.token.encode())
    observer = policy.observer_token is not None and hmac.compare_digest(given, policy.observer_token.encode())
    return "full" if full else "observer" if observer else None


def granted(policy: Policy, headers: Sequence[tuple[str, str]]) -> str | None:
    """The access a request that passed `check` has: `"full"` or `"observer"`."""
    auth = [value for name, value in headers if name.lower() == "authorization"]
    m = _BEARER.match(auth[0]) if len(auth) == 1 else None
    return access(policy, m.group(1)) if m is not None else None


def is_loopback(host: str) -> bool:
    """Whether a --listen host binds loopback only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
