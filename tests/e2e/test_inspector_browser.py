"""The session inspector in a real headless Chromium (the system's /usr/bin/chromium driven by
Playwright; Playwright's own browser download is never used) against a real `serve --listen`
daemon: log in with the one-time link, see the session list, open a session and watch a
running turn's chunks and tool calls arrive, answer a permission and cancel a turn from the
page; a page on another origin reads nothing.

`AGENT_BRIDGE_SCREENSHOTS=1` also writes the README's screenshots (docs/inspector-*.png)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.e2e.inspector_support import inspect_link
from tests.e2e.ws_support import ws_client, ws_daemon

pytestmark = pytest.mark.anyio

DOCS = Path(__file__).parents[2] / "docs"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        if os.environ.get("CI") or os.environ.get("AGENT_BRIDGE_REQUIRE_REAL_AGENTS"):
            pytest.fail("chromium is required in CI (.ci/run installs the Debian package)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[Any]:
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=_chromium(), args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            page = await context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            await browser.close()


def _shot(tmp: Path, name: str) -> Path:
    return DOCS / name if os.environ.get("AGENT_BRIDGE_SCREENSHOTS") == "1" else tmp / name


async def test_log_in_follow_a_turn_answer_and_cancel_from_the_page(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as c, browser_page() as page:
        await c.acp.initialize()
        older = await c.acp.new_session(str(tmp_path / "state"))
        await c.acp.prompt(older, "stream 3")
        await c.acp.prompt(older, "plan")
        sid = await c.acp.new_session(str(tmp_path))
        await c.acp.prompt(sid, "echo hello inspector")
        asked = anyio.Event()

        async def owner_never_answers(method: str, params: dict[str, Any]) -> Any:
            asked.set()
            await anyio.sleep_forever()

        c.acp.handler = owner_never_answers

        # Not logged in: the page says how, and shows no data.
        base = f"http://127.0.0.1:{d.port}"
        await page.goto(base + "/")
        await page.get_by_test_id("login-needed").wait_for()

        link = await inspect_link(d, tmp_path)
        await page.goto(link)
        await page.wait_for_url(base + "/")
        assert link not in page.url
        rows = page.get_by_test_id("session-row")
        await page.locator(f'[data-testid="session-row"][data-id="{sid}"]').wait_for()
        assert await rows.count() == 2
        cookies = await page.context.cookies()
        (cookie,) = [k for k in cookies if k["name"] == "ab_inspector"]
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        assert await page.evaluate("document.cookie") == ""  # invisible to scripts
        await page.screenshot(path=str(_shot(tmp_path, "inspector-list.png")))

        # A filter narrows the list (and is in the URL, to share).
        await page.get_by_test_id("filter-q").fill(sid[5:13])
        await page.get_by_test_id("filter-q").press("Enter")
        await page.wait_for_url(f"**q={sid[5:13]}*")
        await page.wait_for_function("document.querySelectorAll('[data-testid=session-row]').length === 1")

        await page.locator(f'[data-testid="session-row"][data-id="{sid}"] a').click()
        await page.wait_for_url(f"**session={sid}*")
        timeline = page.get_by_test_id("timeline")
        await timeline.get_by_text("hello inspector", exact=True).wait_for()

        async with anyio.create_task_group() as tg:
            results: list[Any] = []

            async def prompt(text: str) -> None:
                results.append(await c.acp.prompt(sid, text))

            # A running turn's chunks arrive while it runs (the turn is still busy).
            tg.start_soon(prompt, "slow 60 0.05")
            await timeline.get_by_text("slow 3 ", exact=False).last.wait_for()
            assert "busy" in (await page.get_by_test_id("status").inner_text())
            await timeline.get_by_text("slow 40 ", exact=False).last.wait_for()
        assert [r["stopReason"] for r in results] == ["end_turn"]

        async with anyio.create_task_group() as tg:
            results.clear()
            tg.start_soon(prompt, "permission")
            await asked.wait()
            # The tool call, then the pending question with the agent's options.
            tool = timeline.get_by_test_id("tool-call").filter(has_text="Write marker")
            await tool.get_by_text("Write marker").wait_for()
            ask = page.get_by_test_id("permission")
            await ask.wait_for()
            await ask.locator('button[data-option="allow"]').click()
            await timeline.get_by_text("permission: allow").wait_for()
        assert [r["stopReason"] for r in results] == ["end_turn"]
        await tool.locator(".status.completed").wait_for()
        await timeline.get_by_text("permission resolved by agent-bridge inspector").wait_for()
        assert await page.get_by_test_id("permission").count() == 0

        # Thoughts, an edit with its diff and output, usage with a cost (in the header too).
        await c.acp.prompt(sid, "edit")
        await timeline.locator("li.thought").get_by_text("The greeting needs a name.").wait_for()
        edit = timeline.get_by_test_id("tool-call").filter(has_text="Edit hello.py")
        await edit.locator(".status.completed").wait_for()
        assert await edit.locator(".diff .path").inner_text() == "/work/hello.py"
        assert (await edit.locator(".diff pre.old").inner_text()).strip() == 'print("hello")'
        assert (await edit.locator(".diff pre.new").inner_text()).strip() == 'print("hello, world")'
        assert await edit.locator("pre.out").inner_text() == "1 line changed"
        await timeline.get_by_text("usage: 1200 of 200000 tokens · $0.0123").wait_for()
        await page.get_by_test_id("cost").get_by_text("$0.0123").wait_for()

        # Search the session's history; the hits are marked in the timeline.
        await page.get_by_test_id("search").fill("slow 12 ")
        await page.get_by_test_id("search").press("Enter")
        await page.get_by_test_id("hits").get_by_text("1 match", exact=False).wait_for()
        await page.wait_for_url("**&q=slow*")
        assert await page.locator(".timeline li.match").count() == 1
        await page.get_by_test_id("search").fill("")
        await page.get_by_test_id("search").press("Enter")
        await page.wait_for_function("document.querySelectorAll('.timeline li.match').length === 0")
        await edit.scroll_into_view_if_needed()
        await page.evaluate("window.scrollBy(0, 140)")
        await page.screenshot(path=str(_shot(tmp_path, "inspector-session.png")), full_page=False)

        async with anyio.create_task_group() as tg:
            results.clear()
            tg.start_soon(prompt, "slow 400 0.05")
            # The new turn's own block (the first turn's has "slow 5 " too).
            await timeline.locator("li.agent").last.get_by_text("slow 5 ", exact=False).wait_for()
            await page.get_by_test_id("cancel").click()
        assert [r["stopReason"] for r in results] == ["cancelled"]
        await page.get_by_test_id("cancel").wait_for(state="detached")

        # A shared link to the other session (through the list, back in history): its plan.
        await page.go_back()
        await page.goto(f"{base}/?session={older}")
        await (
            page.get_by_test_id("timeline")
            .locator("li.plan")
            .get_by_text("step one (in_progress)")
            .wait_for()
        )


async def test_a_page_on_another_origin_reads_nothing(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as c, browser_page() as page:
        await c.acp.initialize()
        sid = await c.acp.new_session(str(tmp_path))
        base = f"http://127.0.0.1:{d.port}"
        await page.goto(await inspect_link(d, tmp_path))
        await page.wait_for_url(base + "/")
        await page.locator(f'[data-testid="session-row"][data-id="{sid}"]').wait_for()

        # Two attacker pages, served (by Playwright) on other origins: another site, and another
        # port of 127.0.0.1 (same site: the browser even sends it the cookie).
        for origin in ("http://evil.example", "http://127.0.0.1:9"):
            await page.route(
                f"{origin}/**",
                lambda route: route.fulfill(
                    status=200, content_type="text/html", body="<!doctype html><p>hi"
                ),
            )
            await page.goto(f"{origin}/attack.html")
            got = await page.evaluate(
                """async (base) => {
                  const out = [];
                  for (const path of ["/inspector/api/sessions", "/inspector/api/me", "/"]) {
                    try {
                      const r = await fetch(base + path, {credentials: "include"});
                      out.push("read " + r.status + " " + (await r.text()).slice(0, 40));
                    } catch (e) { out.push("blocked"); }
                    try {
                      const o = await fetch(base + path, {credentials: "include", mode: "no-cors"});
                      out.push("opaque " + o.type + " " + o.status);
                    } catch (e) { out.push("blocked"); }  // e.g. Private Network Access
                  }
                  try {
                    const r = await fetch(base + "/inspector/api/sessions/x/cancel",
                      {method: "POST", credentials: "include", body: "{}", headers: {"Content-Type": "application/json"}});
                    out.push("wrote " + r.status);
                  } catch (e) { out.push("blocked"); }
                  return out;
                }""",
                base,
            )
            # Nothing readable: refused by CORS (no Access-Control-* headers, ever), or opaque.
            assert len(got) == 7 and set(got) <= {"blocked", "opaque opaque 0"}, (origin, got)
            assert got[0::2] == ["blocked"] * 3 + ["blocked"], (origin, got)
            # Framing the inspector is refused too (frame-ancestors 'none', X-Frame-Options).
            framed = await page.evaluate(
                """(base) => new Promise((done) => {
                  const f = document.createElement("iframe");
                  f.src = base + "/";
                  f.onload = () => { try { done("readable " + f.contentDocument.body.innerText); } catch (e) { done("no access"); } };
                  document.body.append(f);
                  setTimeout(() => done("timeout"), 5000);
                })""",
                base,
            )
            assert framed in ("no access", "timeout"), framed
        assert d.token not in d.stderr.text()
