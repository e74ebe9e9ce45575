// A real MCP client on the official TypeScript SDK, run by tests/e2e/test_ts_client.py:
//
//   node client.mjs stdio -- COMMAND [ARG...]   (the server gets this process's environment)
//   node client.mjs http URL                    (the key in SANDBOX_API_KEY)
//
// It lists the tools, runs print(6 * 7), a 3 MB flood, cancels a 60 s run once it has
// started and runs again on the same connection; over HTTP a wrong key is tried too. It
// prints one JSON object: each step's result, or the error it ended with. pytest asserts on
// it, so a failure reads as which step went wrong and how.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const LONG = "import time\nprint('started', flush=True)\ntime.sleep(60)";
const FLOOD = "print('z' * 3_000_000)";
const WRONG_KEY = "sbx_000000000000_" + "A".repeat(43);
const CALL_TIMEOUT_MS = 45_000; // a call that hangs fails as this step, not as the whole test

function httpTransport(url, key, fetched) {
  // Every request and its answer, so the test can see what a refused client tried.
  const recording = async (input, init) => {
    const response = await fetch(input, init);
    fetched.push({
      method: init?.method ?? "GET",
      url: String(input),
      status: response.status,
      wwwAuthenticate: response.headers.get("www-authenticate"),
    });
    return response;
  };
  return new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
    fetch: recording,
  });
}

function describe(error) {
  return { error: String(error?.message ?? error), name: error?.name, code: error?.code };
}

async function step(results, name, work) {
  try {
    results[name] = await work();
  } catch (error) {
    results[name] = describe(error);
  }
}

const texts = (result) => result.content.filter((c) => c.type === "text").map((c) => c.text);

async function call(client, code, options = {}) {
  const args = { name: "execute_code", arguments: { code } };
  return client.callTool(args, undefined, { timeout: CALL_TIMEOUT_MS, ...options });
}

async function cancelAfterStart(client) {
  // Abort once the run has printed 'started' (a progress notification carries its last line).
  const controller = new AbortController();
  let progress = null;
  let abortedAt = 0;
  const abort = () => {
    if (!abortedAt) {
      abortedAt = Date.now();
      controller.abort("the test cancels");
    }
  };
  const fallback = setTimeout(abort, 30_000); // no progress at all: cancel anyway, and say so
  const onprogress = (p) => {
    progress ??= p.message ?? null;
    if (String(p.message ?? "").includes("started")) abort();
  };
  try {
    const result = await call(client, LONG, { signal: controller.signal, onprogress });
    return { rejected: false, text: texts(result), progress };
  } catch (error) {
    return { rejected: true, ...describe(error), progress, rejectMs: Date.now() - abortedAt };
  } finally {
    clearTimeout(fallback);
  }
}

async function session(client, results) {
  const logged = { chars: 0, count: 0 };
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logged.count += 1;
    logged.chars += String(n.params.data ?? "").length;
  });
  await step(results, "tools", async () => (await client.listTools()).tools.map((t) => t.name));
  await step(results, "run", async () => texts(await call(client, "print(6 * 7)")));
  await step(results, "flood", async () => {
    logged.chars = logged.count = 0;
    const result = await call(client, FLOOD);
    const types = result.content.map((c) => c.type);
    return { types, texts: texts(result), structured: "structuredContent" in result, logged };
  });
  await step(results, "cancel", () => cancelAfterStart(client));
  await step(results, "after", async () => texts(await call(client, "print(5)")));
}

async function wrongKey(url) {
  const fetched = [];
  const client = new Client({ name: "sandbox-e2e-ts", version: "1.0.0" });
  try {
    await client.connect(httpTransport(url, WRONG_KEY, fetched));
    return { connected: true, fetched };
  } catch (error) {
    return { connected: false, ...describe(error), fetched };
  } finally {
    await client.close().catch(() => {});
  }
}

async function main() {
  const [kind, ...rest] = process.argv.slice(2);
  const results = { kind };
  const client = new Client({ name: "sandbox-e2e-ts", version: "1.0.0" });
  let transport;
  if (kind === "stdio") {
    const [command, ...args] = rest[0] === "--" ? rest.slice(1) : rest;
    transport = new StdioClientTransport({ command, args, env: { ...process.env } });
  } else if (kind === "http") {
    transport = httpTransport(rest[0], process.env.SANDBOX_API_KEY ?? "", []);
  } else {
    throw new Error(`usage: client.mjs stdio -- COMMAND [ARG...] | client.mjs http URL`);
  }
  await step(results, "connect", async () => {
    await client.connect(transport);
    return { server: client.getServerVersion(), protocol: transport.protocolVersion ?? null };
  });
  if (!results.connect.error) await session(client, results);
  if (kind === "http") {
    await transport.terminateSession().catch(() => {}); // ends the sandbox session now
    results.wrongKey = await wrongKey(rest[0]);
  }
  await client.close().catch(() => {});
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(1);
  },
);
