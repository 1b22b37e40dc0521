"""Secret redaction for everything the bridge writes for humans: error messages sent to
clients, log records and protocol traces.

Two sources of secrets: values of environment variables whose names say they are secret
(`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, ...) — from the daemon's environment, the
login-shell environment and agents' configured `env` — and well-known key shapes that may
turn up anywhere (an agent echoing a key back in its stderr, a pasted `Bearer` header).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

# Names of environment variables whose values are secrets.
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|COOKIE|SESSION_ID|_PWD$|_PASS$", re.I
)
# Names that match the above but hold no secret (paths, switches, public identifiers).
NOT_SECRET_NAME = re.compile(
    r"(_PATH|_FILE|_DIR|_HOME|_URL|_HOST|_PORT|_ID_FILE|_SOCK|_MODE)$|^XAUTHORITY$", re.I
)
# Variables holding a URL or DSN: not secret as a whole, but a password in them is.
URL_NAME = re.compile(r"(_URL|_URI|_DSN)$", re.I)
# `scheme://user:password@host`: the password, wherever it turns up.
URL_PASSWORD = re.compile(r"(?P<pre>\b[a-z][a-z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@/]+)(?=@)", re.I)
# Shorter values are switches ("1", "true"), not secrets; masking them would ruin traces.
MIN_SECRET_LEN = 8

# Known key shapes. Order matters: the most specific first.
PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"),  # Anthropic
    re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"),  # OpenAI
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),  # Google API keys
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\bAKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),  # JWTs (OAuth tokens)
)
# One pass for all shapes.
KEY_SHAPES = re.compile("|".join(p.pattern for p in PATTERNS))
# `Bearer <token>` / `x-api-key: <key>` / `Authorization: Basic <creds>`: keep the label, mask the value.
LABELLED = re.compile(
    r"(?P<label>\bBearer\s+|\b(?:x-api-key|api[_-]?key|authorization|token|password|secret)"
    r"\"?\s*[:=]\s*\"?(?:Bearer\s+|Basic\s+)?)(?P<value>[A-Za-z0-9_\-\.~\+/=]{8,})",
    re.I,
)


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not NOT_SECRET_NAME.search(name)


def secret_values(env: Mapping[str, str]) -> set[str]:
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LEN}
    for k, v in env.items():
        if URL_NAME.search(k):
            # Also on its own: a tool may print the password without the URL around it.
            values |= {m.group("pw") for m in URL_PASSWORD.finditer(v) if len(m.group("pw")) >= MIN_SECRET_LEN}
    return values


class Redactor:
    """Masks known secret values and key-shaped strings. Add values as they become known
    (the login-shell environment, agents' configured env, the WebSocket token)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._values: set[str] = set()
        self._literal: re.Pattern[str] | None = None
        self.add_env(os.environ if env is None else env)

    def add_env(self, env: Mapping[str, str]) -> None:
        self.add(secret_values(env))

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if len(v) >= MIN_SECRET_LEN} - self._values
        if not new:
            return
        self._values |= new
        # Longest first, so a secret that contains another is masked whole.
        alts = sorted(self._values, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(v) for v in alts))

    def text(self, s: str) -> str:
        if self._literal is not None:
            s = self._literal.sub(MASK, s)
        s = KEY_SHAPES.sub(MASK, s)
        s = URL_PASSWORD.sub(lambda m: m.group("pre") + MASK, s)
        return LABELLED.sub(lambda m: m.group("label") + MASK, s)

    def knows(self, s: str) -> bool:
        """Whether `s` holds one of the known secret values (not a mere key shape)."""
        return self._literal is not None and self._literal.search(s) is not None

    def known_values(self, obj: Any) -> Any:
        """A copy of a JSON value with the known secret values masked, and nothing else
        touched: for the session's own log, whose text must stay what the agent said."""
        if isinstance(obj, str):
            return self._literal.sub(MASK, obj) if self._literal is not None else obj
        if isinstance(obj, dict):
            return {k: self.known_values(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.known_values(v) for v in obj]
        return obj

    def value(self, obj: Any) -> Any:
        """A copy of a JSON value with every string (keys included) redacted."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        return obj


def mask_mcp_servers(params: Any, redactor: Redactor | None = None) -> Any:
    """A copy of request params whose `mcpServers` carry their `env` and `headers` values
    masked (they are API keys and bearer tokens as often as not); other params unchanged.
    The values are also added to `redactor` (default: the process-wide one), so an agent
    echoing one back is masked in logs and traces too. The agent itself gets the originals."""
    if not isinstance(params, dict) or not isinstance(params.get("mcpServers"), list):
        return params
    found: list[str] = []
    servers = []
    for server in params["mcpServers"]:
        if isinstance(server, dict):
            server = dict(server)
            for field in ("env", "headers"):
                if isinstance(server.get(field), list):
                    server[field] = [_mask_pair(pair, found) for pair in server[field]]
        servers.append(server)
    (redactor or default()).add(found)
    return {**params, "mcpServers": servers}


def _mask_pair(pair: Any, found: list[str]) -> Any:
    if isinstance(pair, dict) and isinstance(pair.get("value"), str):
        found.append(pair["value"])
        # `Bearer <token>`, `Basic <creds>`: the credential may turn up without its scheme.
        found.append(pair["value"].rsplit(" ", 1)[-1])
        return {**pair, "value": MASK}
    return pair


_default: Redactor | None = None


def default() -> Redactor:
    """The process-wide redactor (built from the daemon's environment on first use)."""
    global _default
    if _default is None:
        _default = Redactor()
    return _default


def redact(s: str) -> str:
    return default().text(s)
