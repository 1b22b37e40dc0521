"""Who may see the inspector, and how a browser logs in without the token in a URL.

`agent-bridge inspect` sends the daemon's token as a bearer header (never in a URL) and gets
a one-time code back; the printed link carries only that code, which is good once and for
`CODE_TTL` seconds. Opening it sets a random session cookie — `HttpOnly` (no script reads it),
`SameSite=Strict` (no other site's request carries it), `Path=/` — and redirects to `/`. The
cookie keeps the access of the token that made the code: `full` (may cancel a turn and answer
a permission) or `observer` (read-only), for `COOKIE_TTL` seconds, in this process only.

Cookies ignore ports: a browser sends the cookie of `127.0.0.1:PORT` to any other server on
`127.0.0.1`, which could replay it. So the cookie alone opens nothing: the login page also
hands the page a key (in its body, which only this origin can read), kept in the origin's
`localStorage` (which *is* per port) and sent as `X-Inspector-Key` with every API request.

Cross-site requests are refused before anything else (`cross_site`): an `Origin` that is not
this daemon's own, or a `Sec-Fetch-Site` other than `same-origin` / `none`. Every write
additionally needs an `Origin` equal to the daemon's own and a JSON body.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

CODE_TTL = 120.0
COOKIE_TTL = 12 * 3600.0
COOKIE = "ab_inspector"
MAX_CODES = 64  # outstanding one-time codes (oldest dropped past it)
MAX_SESSIONS = 256  # browser logins kept (oldest dropped past it)


@dataclass
class Logins:
    codes: dict[str, tuple[str, float]] = field(default_factory=dict)  # code → (access, expiry)
    # cookie → (key, access, expiry)
    sessions: dict[str, tuple[str, str, float]] = field(default_factory=dict)

    def new_code(self, access: str) -> str:
        self._expire()
        code = secrets.token_urlsafe(24)
        self.codes[code] = (access, time.monotonic() + CODE_TTL)
        while len(self.codes) > MAX_CODES:
            self.codes.pop(next(iter(self.codes)))
        return code

    def exchange(self, code: str) -> tuple[str, str, str] | None:
        """(cookie value, key, access) for a valid unused code, which is spent; else None."""
        self._expire()
        found = None
        for known in list(self.codes):
            # Constant time against every outstanding code: no timing oracle on a prefix.
            if hmac.compare_digest(known.encode(), code.encode()):
                found = known
        if found is None:
            return None
        access, _ = self.codes.pop(found)
        cookie, key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.sessions[cookie] = (key, access, time.monotonic() + COOKIE_TTL)
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        return cookie, key, access

    def access(self, cookie: str | None, key: str | None) -> str | None:
        """The access of a login whose cookie and key both match; None otherwise."""
        if not cookie or not key:
            return None
        self._expire()
        found = None
        for known, (known_key, access, _) in self.sessions.items():
            same_cookie = hmac.compare_digest(known.encode(), cookie.encode())
            if hmac.compare_digest(known_key.encode(), key.encode()) and same_cookie:
                found = access
        return found

    def logout(self, cookie: str | None) -> None:
        if cookie:
            self.sessions.pop(cookie, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for code in [c for c, (_, expiry) in self.codes.items() if expiry <= now]:
            del self.codes[code]
        for cookie in [c for c, (_, _, expiry) in self.sessions.items() if expiry <= now]:
            del self.sessions[cookie]


def cookie_header(value: str) -> str:
    return f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(COOKIE_TTL)}"


def own_origin(host: str) -> str:
    """The origin of a page this daemon served under `Host: host` (plain HTTP: no TLS)."""
    return f"http://{host}"


def cross_site(host: str, origin: str | None, fetch_site: str | None) -> bool:
    """Whether a request comes from another site or origin (and must see nothing)."""
    if origin is not None and origin != own_origin(host):
        return True
    return fetch_site is not None and fetch_site not in ("same-origin", "none")


CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
