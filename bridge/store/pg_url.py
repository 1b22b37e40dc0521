"""Store URLs: which backend a `store = "…"` / `--store` value names, and how it is shown.

Imports nothing heavy: the command line checks a URL before anything else is loaded, and
the stdio start-up path (SQLite) never imports psycopg.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from urllib.parse import quote, urlsplit, urlunsplit

from bridge.errors import StoreError

SCHEMES = ("postgresql", "postgres")


class StoreUnavailable(StoreError):
    """The configured store cannot be reached at start: the daemon exits 2 with this line."""


def is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in SCHEMES


def check(location: str) -> str | None:
    """Why `location` (a `postgresql://` URL, or the path of a SQLite file) cannot be a store,
    or None."""
    if not location.strip():
        return "store location is empty"
    if "://" not in location:
        return None  # a SQLite file
    try:
        parts = urlsplit(location)
        parts.port  # noqa: B018 - a bad port raises here, not at connect time
    except ValueError as exc:
        return f"store URL {mask(location)} is not valid: {exc}"
    if parts.scheme not in SCHEMES:
        return f"store URL {mask(location)}: only postgresql://… URLs (or a SQLite file path) are supported"
    return None


def take_env_password(url: str, environ: MutableMapping[str, str]) -> str:
    """`url` with the password of `$PGPASSWORD` when it has none, and `PGPASSWORD` taken out
    of `environ`: libpq would read it there at every reconnect, but so would every agent
    the daemon starts, and their tools."""
    password = environ.pop("PGPASSWORD", None)
    if password is None or not is_postgres(url):
        return url
    parts = urlsplit(url)
    if parts.password is not None or "password=" in parts.query:
        return url
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user or quote(os.environ.get('PGUSER', ''), safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


def mask(url: str) -> str:
    """`url` with its password replaced by `***`: the form for logs, errors and stderr."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return _mask_query(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username or ''}:***@{host}"
        if parts.port is not None:
            netloc += f":{parts.port}"
        return _mask_query(urlunsplit(parts._replace(netloc=netloc)))
    except ValueError:
        # Unparseable: show the scheme only, never what might be a password.
        return url.split("://", 1)[0] + "://***"


def _mask_query(url: str) -> str:
    # libpq also takes `?password=…` in the query string.
    parts = urlsplit(url)
    if "password" not in parts.query:
        return url
    pairs = [
        f"{k}=***" if k == "password" else f"{k}={v}"
        for k, _, v in (p.partition("=") for p in parts.query.split("&"))
    ]
    return urlunsplit(parts._replace(query="&".join(pairs)))
