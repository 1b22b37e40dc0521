"""Logging in to a real daemon's session inspector: `agent-bridge inspect` (a real subprocess)
for the one-time link, then the link exchanged for the cookie and the page key."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx

from tests.conftest import bridge_cmd, subprocess_env
from tests.e2e.ws_support import WsDaemon

KEY = re.compile(r'<meta name="inspector-key" content="([^"]+)">')


@dataclass
class Login:
    base: str
    cookie: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"ab_inspector={self.cookie}", "X-Inspector-Key": self.key}

    @property
    def write_headers(self) -> dict[str, str]:
        return {**self.headers, "Origin": self.base, "Content-Type": "application/json"}


async def inspect_link(d: WsDaemon, tmp: Path, *extra: str, discover: bool = False) -> str:
    """The link `agent-bridge inspect` prints (with `--connect`, or found on the state dir)."""
    where = [] if discover else ["--connect", d.url, "--token-file", str(d.state_dir / "ws-token")]
    cmd = [*bridge_cmd(), "inspect", "--state-dir", str(d.state_dir), "--config", str(tmp / "config.toml")]
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*cmd, *where, *extra], env=subprocess_env(), stdin=subprocess.DEVNULL, check=False
        )
    assert done.returncode == 0, done.stderr.decode()
    link = done.stdout.decode().strip()
    assert d.token not in link
    return link


async def login(http: httpx.AsyncClient, link: str) -> Login:
    r = await http.get(link)
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    http.cookies.clear()  # the tests send it by hand, or leave it out
    m = KEY.search(r.text)
    assert m is not None
    base = link.split("/inspector/")[0]
    return Login(base, value, m.group(1))


async def logged_in(d: WsDaemon, tmp: Path, http: httpx.AsyncClient, *extra: str) -> Login:
    return await login(http, await inspect_link(d, tmp, *extra))
