"""The WebSocket gate, against the real daemon: every handshake that lacks the token, carries
it in the wrong place, comes from a foreign or `null` Origin, or names a Host that is not the
daemon's loopback address is refused with the right HTTP status before any upgrade, and
nothing is spawned. The token itself: generated per launch, 256 bits, 0600, and nowhere it
could leak (argv, logs, the agents' environment). Plus a real browser (headless Chromium)
on another origin trying to open the socket."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import psutil
import pytest
from anyio.abc import SocketAttribute, SocketStream
from websockets.asyncio.server import ServerConnection, serve

from bridge.transports.ws_limits import LOG_BURST
from tests.conftest import bridge_cmd, fake_agent_config, subprocess_env
from tests.e2e.ws_support import (
    LISTENING,
    WsDaemon,
    pump,
    raw_handshake,
    start,
    upgrade_headers,
    ws_args,
    ws_client,
    ws_daemon,
)

pytestmark = pytest.mark.anyio

REFUSED_LINE = re.compile(rb"handshake from \S+ refused: (\d{3}) ")


def _host(d: WsDaemon) -> tuple[str, str]:
    return ("Host", f"127.0.0.1:{d.port}")


def _bearer(d: WsDaemon) -> tuple[str, str]:
    return ("Authorization", f"Bearer {d.token}")


# Each case: (id, path, headers given the daemon) → expected status.
def _cases(d: WsDaemon) -> list[tuple[str, str, list[tuple[str, str]], int]]:
    p, tok, host, bearer = d.port, d.token, _host(d), _bearer(d)
    return [
        # Controls: what passes, so the refusals below are refusals of the one thing varied.
        ("ok", "/acp", [host, bearer], 101),
        ("ok-localhost-uppercase", "/acp", [("Host", f"LOCALHOST:{p}"), bearer], 101),
        ("ok-ipv6-loopback-name", "/acp", [("Host", f"[::1]:{p}"), bearer], 101),
        ("ok-bearer-scheme-any-case", "/acp", [host, ("Authorization", f"bearer {tok}")], 101),
        # The token: missing, wrong, or anywhere but the Authorization bearer header.
        ("no-token", "/acp", [host], 401),
        ("wrong-token", "/acp", [host, ("Authorization", f"Bearer {tok[:-1]}x")], 401),
        ("token-prefix", "/acp", [host, ("Authorization", f"Bearer {tok[:-4]}")], 401),
        ("token-in-query", f"/acp?token={tok}", [host], 401),
        ("token-in-query-access_token", f"/acp?access_token={tok}", [host], 401),
        (
            "basic-auth",
            "/acp",
            [host, ("Authorization", "Basic " + base64.b64encode(f"x:{tok}".encode()).decode())],
            401,
        ),
        ("bare-token", "/acp", [host, ("Authorization", tok)], 401),
        ("token-in-cookie", "/acp", [host, ("Cookie", f"token={tok}")], 401),
        ("token-as-subprotocol", "/acp", [host, ("Sec-WebSocket-Protocol", tok)], 401),
        ("two-authorization-headers", "/acp", [host, ("Authorization", "Bearer nope"), bearer], 401),
        # Origin: only exact allowlisted ones (none by default); `null` never.
        ("foreign-origin", "/acp", [host, bearer, ("Origin", "http://evil.example")], 403),
        ("null-origin", "/acp", [host, bearer, ("Origin", "null")], 403),
        ("loopback-page-origin", "/acp", [host, bearer, ("Origin", f"http://127.0.0.1:{p + 1}")], 403),
        ("own-origin", "/acp", [host, bearer, ("Origin", f"http://127.0.0.1:{p}")], 403),
        (
            "two-origins",
            "/acp",
            [host, bearer, ("Origin", "http://a.example"), ("Origin", "http://b.example")],
            403,
        ),
        # Host: the daemon's loopback address exactly (DNS rebinding).
        ("host-prefix-trick", "/acp", [("Host", f"127.0.0.1.evil.com:{p}"), bearer], 403),
        ("host-localhost-suffix", "/acp", [("Host", f"localhost.evil.com:{p}"), bearer], 403),
        ("host-evil", "/acp", [("Host", "evil.com"), bearer], 403),
        ("host-evil-with-port", "/acp", [("Host", f"evil.com:{p}"), bearer], 403),
        ("host-port-only", "/acp", [("Host", f":{p}"), bearer], 403),
        ("host-empty", "/acp", [("Host", ""), bearer], 403),
        ("host-missing", "/acp", [bearer], 403),
        ("host-wrong-port", "/acp", [("Host", f"127.0.0.1:{p + 1}"), bearer], 403),
        ("host-no-port", "/acp", [("Host", "127.0.0.1"), bearer], 403),
        ("host-trailing-dot", "/acp", [("Host", f"localhost.:{p}"), bearer], 403),
        ("host-other-loopback", "/acp", [("Host", f"127.0.0.2:{p}"), bearer], 403),
        ("host-ipv6-long-form", "/acp", [("Host", f"[0:0:0:0:0:0:0:1]:{p}"), bearer], 403),
        ("host-userinfo", "/acp", [("Host", f"evil.com@127.0.0.1:{p}"), bearer], 403),
        ("two-hosts", "/acp", [host, ("Host", f"evil.com:{p}"), bearer], 403),
        # Only /acp.
        ("path-root", "/", [host, bearer], 404),
        ("path-other", "/acp/x", [host, bearer], 404),
        ("path-case", "/ACP", [host, bearer], 404),
    ]


async def test_handshake_matrix_refuses_with_the_right_status_and_spawns_nothing(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        cases = _cases(d)
        got = {}
        for name, path, headers, _ in cases:
            status, _head = await raw_handshake(d.port, [*headers, *upgrade_headers()], path)
            got[name] = status
        assert got == {name: expected for name, _, _, expected in cases}
        # Refused before any upgrade: nothing reached the ACP layer, no agent was started.
        refused = [c for c in cases if c[3] != 101]
        # Logged in order, up to the refusal log's rate limit (ws_limits).
        expected = [c[3] for c in refused][:LOG_BURST]
        with anyio.fail_after(15):
            while len(REFUSED_LINE.findall(bytes(d.stderr.data))) < len(expected):
                await d.stderr.wait_for(b"refused", len(d.stderr.data))
        logged = [int(s) for s in REFUSED_LINE.findall(bytes(d.stderr.data))]
        assert logged == expected
        assert d.agents() == []
        # The token was never written to the log, even on the refusal paths.
        assert d.token not in d.stderr.text()


async def test_refusals_carry_no_secret_and_401_names_the_scheme(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        status, head = await raw_handshake(d.port, [_host(d), *upgrade_headers()])
        assert status == 401
        assert b'WWW-Authenticate: Bearer realm="agent-bridge"' in head
        status, head = await raw_handshake(
            d.port, [_host(d), ("Authorization", f"Bearer {d.token}x"), *upgrade_headers()]
        )
        assert status == 401 and d.token.encode() not in head


async def test_a_plain_http_get_is_refused_like_an_upgrade(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        status, _ = await raw_handshake(d.port, [_host(d)])
        assert status == 401
        # With the token it is still not a WebSocket: 426, and still nothing served.
        status, _ = await raw_handshake(d.port, [_host(d), _bearer(d)])
        assert status == 426
        assert d.agents() == []


async def test_allow_origin_and_allow_host_admit_exactly_what_they_name(tmp_path: Path) -> None:
    extra = ["--allow-origin", "https://editor.example", "--allow-host", "bridge.internal:9999"]
    async with ws_daemon(tmp_path, *extra) as d:
        bearer = _bearer(d)
        ok = ("Origin", "https://editor.example")
        assert (await raw_handshake(d.port, [_host(d), bearer, ok, *upgrade_headers()]))[0] == 101
        for origin in (
            "https://editor.example/",
            "http://editor.example",
            "https://editor.example:443",
            "null",
        ):
            status, _ = await raw_handshake(
                d.port, [_host(d), bearer, ("Origin", origin), *upgrade_headers()]
            )
            assert status == 403, origin
        assert (await raw_handshake(d.port, [("Host", "bridge.internal:9999"), bearer, *upgrade_headers()]))[
            0
        ] == 101
        assert (await raw_handshake(d.port, [("Host", "BRIDGE.internal:9999"), bearer, *upgrade_headers()]))[
            0
        ] == 101
        for host in (
            "bridge.internal",
            "bridge.internal:9998",
            "x.bridge.internal:9999",
            "bridge.internal.:9999",
        ):
            status, _ = await raw_handshake(d.port, [("Host", host), bearer, *upgrade_headers()])
            assert status == 403, host


async def test_token_is_new_per_launch_256_bits_0600_and_never_leaks(tmp_path: Path) -> None:
    tokens = []
    for run in range(2):
        async with ws_daemon(tmp_path, "--log-level", "debug") as d:
            path = d.state_dir / "ws-token"
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == 0o600, oct(mode)
            assert stat.S_IMODE(d.state_dir.stat().st_mode) & 0o077 == 0
            token = d.token
            assert len(base64.urlsafe_b64decode(token + "=")) >= 32
            tokens.append(token)
            if run == 1:
                continue
            # A full session at DEBUG log level: the token appears in no log line, no argv,
            # no agent environment.
            async with ws_client(d) as c:
                await c.acp.initialize()
                sid = await c.acp.new_session(str(tmp_path))
                await c.acp.prompt(sid, "echo hello")
                agents = d.children()
                assert d.agents()
                for proc in [psutil.Process(d.process.pid), *agents]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        assert token not in " ".join(proc.cmdline())
                        assert not [k for k, v in proc.environ().items() if token in v or token in k]
            assert b"DEBUG" in d.stderr.data
            assert token not in d.stderr.text()
    assert tokens[0] != tokens[1]


async def test_token_file_is_used_and_must_be_private(tmp_path: Path) -> None:
    token_file = tmp_path / "tok"
    token = "t" * 20 + base64.urlsafe_b64encode(os.urandom(24)).decode()
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    async with ws_daemon(tmp_path, "--token-file", str(token_file)) as d:
        assert not (d.state_dir / "ws-token").exists()
        bearer = ("Authorization", f"Bearer {token}")
        assert (await raw_handshake(d.port, [_host(d), bearer, *upgrade_headers()]))[0] == 101
    # Readable by others, or too short: refused at start, one clear line, exit 2.
    token_file.chmod(0o644)
    code, err = await _exit_of(tmp_path, "--token-file", str(token_file))
    assert code == 2 and "chmod 600" in err and err.count("\n") == 1 and token not in err
    token_file.write_text("short\n")
    token_file.chmod(0o600)
    code, err = await _exit_of(tmp_path, "--token-file", str(token_file))
    assert code == 2 and "at least 32" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("listen", "extra", "needle"),
    [
        ("ws://0.0.0.0:0", [], "--allow-remote"),
        ("ws://[::]:0", [], "--allow-remote"),
        ("ws://127.0.0.1:0", ["--allow-origin", "null"], "null"),
        ("ws://127.0.0.1:0", ["--allow-origin", "*"], "not an origin"),
        ("ws://127.0.0.1:0", ["--allow-host", "evil.com/x"], "not a host"),
        ("wss://127.0.0.1:0", [], "TLS"),
        ("http://127.0.0.1:0", [], "ws://HOST:PORT"),
        ("ws://127.0.0.1", [], "ws://HOST:PORT"),
        ("ws://127.0.0.1:0/other", [], "/acp"),
        ("ws://127.0.0.1:0", ["--ws-queue-limit", "1000"], "at least"),
        ("ws://127.0.0.1:0", ["--ws-max-message", "lots"], "not a number"),
        ("ws://127.0.0.1:0", ["--ws-send-timeout", "0"], "greater than 0"),
    ],
)
async def test_bad_listen_options_exit_2_with_one_line(
    tmp_path: Path, listen: str, extra: list[str], needle: str
) -> None:
    code, err = await _exit_of(tmp_path, *extra, listen=listen)
    assert code == 2, err
    assert needle in err and err.count("\n") == 1, err


@pytest.mark.parametrize("listen", ["ws://localhost:0", "ws://[::1]:0", "ws://127.0.0.1:0/acp"])
async def test_loopback_listen_forms(tmp_path: Path, listen: str) -> None:
    async with ws_daemon(tmp_path, listen=listen) as d:
        assert d.url.startswith(listen.removesuffix("/acp").removesuffix(":0") + ":")
        async with ws_client(d) as c:
            assert (await c.acp.initialize())["protocolVersion"] == 1


async def test_a_busy_port_exits_2_and_leaves_the_running_daemons_token_alone(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d:
        token = d.token
        # From another state dir (on the same one, the live listener is named instead:
        # tests/store/test_many_daemons.py).
        elsewhere = str(tmp_path / "other-state")
        code, err = await _exit_of(tmp_path, "--state-dir", elsewhere, listen=f"ws://127.0.0.1:{d.port}")
        assert code == 2 and "cannot listen on 127.0.0.1" in err and err.count("\n") == 1, err
        assert d.token == token
        assert (await raw_handshake(d.port, [_host(d), _bearer(d), *upgrade_headers()]))[0] == 101


async def test_non_loopback_bind_with_allow_remote_still_checks_host(tmp_path: Path) -> None:
    process, err = await start(ws_args(tmp_path, "--allow-remote", listen="ws://0.0.0.0:0"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(pump, process, err)
        try:
            with anyio.fail_after(30):
                m = await err.wait_for(LISTENING)
            port = int(m.group(2))
            token = (tmp_path / "state" / "ws-token").read_text().strip()
            bearer = ("Authorization", f"Bearer {token}")
            # Reached over the LAN name: not a loopback Host, not --allow-host'ed → 403.
            status, _ = await raw_handshake(
                port, [("Host", f"192.168.1.20:{port}"), bearer, *upgrade_headers()]
            )
            assert status == 403
            status, _ = await raw_handshake(port, [("Host", f"127.0.0.1:{port}"), bearer, *upgrade_headers()])
            assert status == 101
        finally:
            process.terminate()
            with anyio.fail_after(20):
                await process.wait()
            tg.cancel_scope.cancel()
    assert process.returncode == 0


async def _exit_of(tmp: Path, *extra: str, listen: str = "ws://127.0.0.1:0") -> tuple[int, str]:
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [*bridge_cmd(), *ws_args(tmp, *extra, listen=listen)], check=False, env=subprocess_env()
        )
    return done.returncode, done.stderr.decode()


# -- a real browser ------------------------------------------------------------------------------------
PAGE = """<!doctype html><html><head><title>pending</title></head><body>
<div id="msg"></div><div id="out">pending</div>
<script>
let opened = false;
const ws = new WebSocket("ws://127.0.0.1:%(port)d/acp");
ws.onopen = () => {
  opened = true;
  document.title = "OPENED";
  ws.send(JSON.stringify({jsonrpc: "2.0", id: 1, method: "initialize", params: {protocolVersion: 1}}));
};
ws.onmessage = (e) => {
  document.getElementById("msg").textContent = "MESSAGE " + e.data;
  fetch("/result?opened");
  ws.close();
};
ws.onclose = (e) => {
  if (opened) return;
  document.title = "REFUSED";
  document.getElementById("out").textContent = "REFUSED code=" + e.code;
  fetch("/result?refused");
};
</script>
<!-- The page server holds this image until the script has reported, so the load event (and
     with it --dump-dom) comes after the socket was refused or opened. -->
<img src="/hold" width="1" height="1">
</body></html>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") or os.environ.get("AGENT_BRIDGE_REQUIRE_REAL_AGENTS"):
            pytest.fail("chromium is required in CI (.ci/run installs the Debian package)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); the real-browser test needs it")
    return found


class PageServer:
    """Serves the attack page on its own loopback origin and records what the page reports."""

    def __init__(self) -> None:
        self.target_port = 0
        self.results: list[str] = []
        self.reported = anyio.Event()
        self.port = 0

    async def handle(self, stream: SocketStream) -> None:
        async with stream:
            request = b""
            with contextlib.suppress(anyio.EndOfStream):
                while b"\r\n\r\n" not in request:
                    request += await stream.receive()
            target = request.split(b" ")[1].decode() if request.count(b" ") >= 2 else "/"
            if target == "/":
                body = (PAGE % {"port": self.target_port}).encode()
            elif target == "/hold":
                with anyio.move_on_after(60):
                    await self.reported.wait()
                body = b""
            else:
                if target.startswith("/result?"):
                    self.results.append(target.split("?", 1)[1])
                    self.reported.set()
                body = b"ok"
            await stream.send(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PageServer]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = int(listener.extra(SocketAttribute.local_port))
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self.handle)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()

    async def load_in_chromium(self, tmp: Path) -> str:
        """The page's DOM after its script ran (the socket opened or was refused)."""
        with anyio.fail_after(90):
            done = await anyio.run_process(
                [
                    _chromium(),
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--no-first-run",
                    f"--user-data-dir={tmp / 'chromium-profile'}",
                    "--dump-dom",
                    f"http://127.0.0.1:{self.port}/",
                ],
                check=False,
                stderr=subprocess.DEVNULL,
            )
        assert done.returncode == 0
        return done.stdout.decode()


@pytest.mark.parametrize("allow_page_origin", [False, True], ids=["origin-not-allowed", "origin-allowed"])
async def test_a_page_in_a_real_browser_cannot_open_the_socket(
    tmp_path: Path, allow_page_origin: bool
) -> None:
    _chromium()
    async with PageServer().running() as page:
        origin = f"http://127.0.0.1:{page.port}"
        extra = ["--allow-origin", origin] if allow_page_origin else []
        async with ws_daemon(tmp_path, *extra, config=fake_agent_config(tmp_path)) as d:
            page.target_port = d.port
            dom = await page.load_in_chromium(tmp_path)
            with anyio.fail_after(30):
                await page.reported.wait()
            # The page's side: its script ran, tried, and was refused.
            assert "<title>REFUSED</title>" in dom, dom
            assert '<div id="msg"></div><div id="out">REFUSED' in dom, dom
            assert page.results == ["refused"]
            # The daemon's side: a handshake from that origin came and was refused in the gate
            # (403 for a foreign origin; 401 even for an allowed one — a browser cannot send
            # the bearer token), nothing got through, nothing was spawned.
            m = await d.stderr.wait_for(
                re.compile(rb"refused: (\d{3}) [^\n]*origin='" + origin.encode() + rb"'")
            )
            assert int(m.group(1)) == (401 if allow_page_origin else 403)
            assert b"accepted" not in d.stderr.data
            assert d.agents() == []


async def test_the_browser_harness_sees_an_open_socket_when_there_is_no_gate(tmp_path: Path) -> None:
    """Control for the test above: the same page against a WebSocket server with no gate does
    connect, so a REFUSED there is the daemon's doing, not the harness's."""
    _chromium()

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with PageServer().running() as page, serve(echo, "127.0.0.1", 0) as server:
        page.target_port = int(server.sockets[0].getsockname()[1])
        dom = await page.load_in_chromium(tmp_path)
        with anyio.fail_after(30):
            await page.reported.wait()
        assert "<title>OPENED</title>" in dom and '<div id="msg">MESSAGE {' in dom, dom
        assert page.results == ["opened"]
