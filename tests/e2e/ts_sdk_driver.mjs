// The TypeScript ACP SDK (@agentclientprotocol/sdk, pinned in tools/agents/package.json) as a
// client of `agent-bridge serve --listen`: one full turn over its Streamable HTTP client or its
// WebSocket client (with the `ws` package's constructor, as Node needs), then a second
// connection that loads the session. Driven by tests/e2e/test_remote_transport_ts_sdk.py.
//
// usage: node ts_sdk_driver.mjs http|ws URL CWD
// env:   ACP_TOKEN (the bearer token: never argv), AGENT_BRIDGE_AGENTS_DIR (where the packages are)
// out:   one JSON object on stdout: what each step returned, and every message in both directions.
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [mode, url, cwd] = process.argv.slice(2);
const token = process.env.ACP_TOKEN;
if (!token || !["http", "ws"].includes(mode)) {
  console.error("usage: ACP_TOKEN=… node ts_sdk_driver.mjs http|ws URL CWD");
  process.exit(2);
}
// The packages live in the test-owned npm dir, not next to this file: resolve from there.
const require = createRequire(join(process.env.AGENT_BRIDGE_AGENTS_DIR, "package.json"));
const load = (spec) => import(pathToFileURL(require.resolve(spec)).href);
const acp = await load("@agentclientprotocol/sdk");
const headers = { Authorization: `Bearer ${token}` };

// A hung daemon must fail the run, not hang the test.
setTimeout(() => {
  console.error("driver: timed out");
  process.exit(3);
}, 90_000).unref();

async function openStream() {
  if (mode === "http") {
    const { createHttpStream } = await load("@agentclientprotocol/sdk/experimental/http-client");
    return createHttpStream(url, { headers });
  }
  const { createWebSocketStream } = await load("@agentclientprotocol/sdk/experimental/ws-client");
  const ws = await load("ws");
  return createWebSocketStream(url, { headers, WebSocket: ws.WebSocket ?? ws.default });
}

// Every message, as the SDK wrote and read it, so the test can validate the daemon's side
// against the ACP schema and see the ids the SDK chose.
const log = [];
function tap(stream, connection) {
  const writer = stream.writable.getWriter();
  return {
    writable: new WritableStream({
      write(message) {
        log.push({ connection, dir: "out", message });
        return writer.write(message);
      },
      close: () => writer.close(),
      abort: (reason) => writer.abort(reason),
    }),
    readable: stream.readable.pipeThrough(
      new TransformStream({
        transform(message, controller) {
          log.push({ connection, dir: "in", message });
          controller.enqueue(message);
        },
      }),
    ),
  };
}

const updates = [];
const permissions = [];
let sawFirstSlow;
const firstSlow = new Promise((resolve) => (sawFirstSlow = resolve));

function app() {
  return acp
    .client({ name: "ts-sdk-driver" })
    .onNotification("session/update", ({ params }) => {
      updates.push(params);
      if (JSON.stringify(params.update).includes("slow 0")) sawFirstSlow();
    })
    .onRequest("session/request_permission", ({ params }) => {
      permissions.push(params);
      const allow = params.options.find((o) => o.kind === "allow_once") ?? params.options[0];
      return { outcome: { outcome: "selected", optionId: allow.optionId } };
    });
}

const text = (t) => [{ type: "text", text: t }];
const chunks = (sid) =>
  updates
    .filter((u) => u.sessionId === sid && u.update.sessionUpdate === "agent_message_chunk")
    .map((u) => u.update.content.text);

const out = { mode };
await app().connectWith(tap(await openStream(), 1), async (ctx) => {
  const init = await ctx.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
  out.protocolVersion = init.protocolVersion;
  out.loadSession = init.agentCapabilities?.loadSession ?? false;
  const { sessionId } = await ctx.request("session/new", { cwd, mcpServers: [] });
  out.sessionId = sessionId;
  const streamed = await ctx.request("session/prompt", { sessionId, prompt: text("stream 25") });
  out.streamed = { stopReason: streamed.stopReason, chunks: chunks(sessionId) };
  const asked = await ctx.request("session/prompt", { sessionId, prompt: text("permission") });
  out.permission = {
    stopReason: asked.stopReason,
    asked: permissions.map((p) => p.sessionId),
    options: permissions.flatMap((p) => p.options.map((o) => o.optionId)),
  };
  const slow = ctx.request("session/prompt", { sessionId, prompt: text("slow 200 0.05") });
  await firstSlow;
  await ctx.notify("session/cancel", { sessionId });
  out.cancelled = { stopReason: (await slow).stopReason };
});

// A fresh connection takes the session back: the HTTP client opens the session's SSE stream
// before session/load answers; the history is replayed to it.
const before = updates.length;
await app().connectWith(tap(await openStream(), 2), async (ctx) => {
  await ctx.request("initialize", { protocolVersion: 1, clientCapabilities: {} });
  await ctx.request("session/load", { sessionId: out.sessionId, cwd, mcpServers: [] });
  out.loaded = { replayed: updates.slice(before).filter((u) => u.sessionId === out.sessionId).length };
});

out.log = log;
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
