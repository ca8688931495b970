/**
 * The background's rules, driven through its real code with the browser's
 * parts replaced by in-memory ones: a native port that records frames and
 * lets the test answer as the host would, windows that are just ids, and
 * timers the test fires.  (The real browser and the real host are exercised
 * by tests/browser/ in the Python suite.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Bridge, type BridgeDeps, type Client, type Policy } from "../src/background/bridge";
import type { BackgroundToContent } from "../src/messages";
import type { NativeRequest } from "../src/protocol";

const ALLOWED = "https://ehr.example.nhs.uk";

class FakeHost {
  sent: NativeRequest[] = [];
  connects = 0;
  onMessage: ((m: unknown) => void) | null = null;
  onDisconnect: ((m: string | undefined) => void) | null = null;
  ready: Record<string, unknown> | null = { version: "0.1.0", protocol: 1, agent: "none", allowedOrigins: [ALLOWED] };
  failWith: string | null = null;

  connect: BridgeDeps["connectNative"] = (onMessage, onDisconnect) => {
    this.connects++;
    this.onMessage = onMessage;
    this.onDisconnect = onDisconnect;
    const ready = this.ready;
    const failWith = this.failWith;
    queueMicrotask(() => {
      if (failWith !== null) onDisconnect(failWith);
      else if (ready) onMessage({ event: "ready", data: ready });
    });
    return { postMessage: (m: unknown) => this.sent.push(structuredClone(m) as NativeRequest), disconnect: () => undefined };
  };
  send(frame: unknown): void {
    this.onMessage?.(frame);
  }
  last(method?: string): NativeRequest {
    const list = method ? this.sent.filter((r) => r.method === method) : this.sent;
    const found = list[list.length - 1];
    assert.ok(found, `no ${method ?? ""} request sent`);
    return found;
  }
  exit(message = "Native host has exited."): void {
    this.onDisconnect?.(message);
  }
}

class FakeClient implements Client {
  received: BackgroundToContent[] = [];
  constructor(
    readonly key: string,
    readonly tabId: number | undefined,
    readonly sender: { origin?: string; url?: string },
  ) {}
  post(message: BackgroundToContent): void {
    this.received.push(structuredClone(message));
  }
  responseTo(id: number): BackgroundToContent | undefined {
    return this.received.find((m) => m.type === "response" && m.id === id);
  }
}

function setup(policy: Policy = { allowedOrigins: null, promptTimeoutMs: 60_000 }) {
  const host = new FakeHost();
  const timers: Array<{ fn: () => void; at: number; cleared: boolean }> = [];
  const windows = { opened: [] as string[], closed: [] as number[], next: 100 };
  const keepAlive: boolean[] = [];
  let keyCounter = 0;
  const deps: BridgeDeps = {
    connectNative: host.connect,
    extensionVersion: "9.8.7",
    policy: async () => policy,
    openPromptWindow: async (key) => {
      windows.opened.push(key);
      return windows.next++;
    },
    closeWindow: (id) => windows.closed.push(id),
    setKeepAlive: (on) => keepAlive.push(on),
    randomKey: () => `key-${String(++keyCounter).padStart(20, "0")}`,
    now: () => 0,
    setTimeout: ((fn: () => void, ms: number) => {
      const t = { fn, at: ms, cleared: false };
      timers.push(t);
      return t;
    }) as unknown as typeof setTimeout,
    clearTimeout: ((t: { cleared: boolean } | undefined) => {
      if (t) t.cleared = true;
    }) as unknown as typeof clearTimeout,
    log: () => undefined,
  };
  const bridge = new Bridge(deps);
  const fire = (ms: number): void => {
    for (const t of timers) if (!t.cleared && t.at === ms) { t.cleared = true; t.fn(); }
  };
  return { host, bridge, windows, keepAlive, fire };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

function client(key: string, origin = ALLOWED, tabId: number | undefined = 1): FakeClient {
  return new FakeClient(key, tabId, { origin, url: `${origin}/page` });
}

function request(bridge: Bridge, c: FakeClient, id: number, method: "getStatus" | "getTicket" | "getTicketNoAuth" | "sign" | "getCertificate", extra: { secure?: boolean; claimedOrigin?: string } = {}) {
  bridge.onClientMessage(c, { type: "request", id, method, params: {}, secure: extra.secure ?? true, origin: extra.claimedOrigin ?? (c.sender.origin as string) });
}

test("a request goes to the host with the sender's origin, and the answer comes back to that frame by id", async () => {
  const { host, bridge } = setup();
  const a = client("a");
  bridge.attach(a);
  request(bridge, a, 41, "getTicketNoAuth");
  await settle();
  const sent = host.last("getTicketNoAuth");
  assert.equal(sent.origin, ALLOWED);
  host.send({ id: sent.id, result: { ticket: null } });
  assert.deepEqual(a.responseTo(41), { type: "response", id: 41, result: null });
});

test("requests from many frames share one native port and are matched by id whatever the order", async () => {
  const { host, bridge } = setup();
  const a = client("a", ALLOWED, 1);
  const b = client("b", ALLOWED, 2);
  bridge.attach(a);
  bridge.attach(b);
  request(bridge, a, 1, "getStatus");
  request(bridge, b, 1, "getTicketNoAuth");
  await settle();
  assert.equal(host.connects, 1);
  const [first, second] = host.sent;
  assert.ok(first && second && first.id !== second.id);
  host.send({ id: second.id, result: { ticket: "T-b" } });
  host.send({ id: first.id, result: { host: "0.1.0", protocol: 1, agent: "none", readers: [], cardPresent: false, session: { active: false } } });
  assert.deepEqual(b.responseTo(1), { type: "response", id: 1, result: "T-b" });
  const status = a.responseTo(1);
  assert.ok(status && "result" in status);
  assert.equal((status.result as { extension: string }).extension, "9.8.7");
});

test("what the page or content script claims as origin never widens what the browser reported", async () => {
  const { host, bridge } = setup();
  const evil = client("e", "https://evil.example");
  bridge.attach(evil);
  request(bridge, evil, 1, "getTicket", { claimedOrigin: ALLOWED });
  await settle();
  assert.equal(host.sent.length, 0);
  const answer = evil.responseTo(1);
  assert.ok(answer && "error" in answer);
  assert.equal(answer.error.code, "ORIGIN_NOT_ALLOWED");
});

test("an origin outside the host's list gets ORIGIN_NOT_ALLOWED and the host is sent nothing", async () => {
  const { host, bridge, windows } = setup();
  const other = client("o", "https://other.example");
  bridge.attach(other);
  for (const [i, method] of (["getTicket", "sign", "getStatus"] as const).entries()) request(bridge, other, i, method);
  await settle();
  assert.equal(host.sent.length, 0);
  assert.equal(windows.opened.length, 0);
  assert.deepEqual(other.received.map((m) => ("error" in m ? m.error.code : "ok")), ["ORIGIN_NOT_ALLOWED", "ORIGIN_NOT_ALLOWED", "ORIGIN_NOT_ALLOWED"]);
});

test("insecure contexts are refused before the host is even started", async () => {
  const { host, bridge } = setup();
  const http = client("h", "http://ehr.example");
  const mixed = client("m", ALLOWED);
  bridge.attach(http);
  bridge.attach(mixed);
  request(bridge, http, 1, "getStatus");
  request(bridge, mixed, 1, "getStatus", { secure: false });
  await settle();
  assert.equal(host.connects, 0);
  for (const c of [http, mixed]) {
    const answer = c.responseTo(1);
    assert.ok(answer && "error" in answer && answer.error.code === "INSECURE_CONTEXT");
  }
});

test("enterprise policy narrows the host's list: only origins on both work", async () => {
  const { host, bridge } = setup({ allowedOrigins: ["https://other.example"], promptTimeoutMs: 60_000 });
  const a = client("a");
  bridge.attach(a);
  request(bridge, a, 1, "getStatus");
  await settle();
  assert.equal(host.connects, 0);
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "ORIGIN_NOT_ALLOWED");
});

test("a host that is not installed gives HOST_UNAVAILABLE, and the next request tries again", async () => {
  const { host, bridge } = setup();
  host.failWith = "Specified native messaging host not found.";
  const a = client("a");
  bridge.attach(a);
  request(bridge, a, 1, "getStatus");
  await settle();
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer);
  assert.equal(answer.error.code, "HOST_UNAVAILABLE");
  assert.match(answer.error.message, /cisbridge doctor/);
  host.failWith = null;
  request(bridge, a, 2, "getStatus");
  await settle();
  assert.equal(host.connects, 2);
  assert.equal(host.last().method, "getStatus");
});

test("a host of another protocol gives VERSION_MISMATCH", async () => {
  const { host, bridge } = setup();
  host.ready = { version: "2.0.0", protocol: 2, agent: "none", allowedOrigins: [ALLOWED] };
  const a = client("a");
  bridge.attach(a);
  request(bridge, a, 1, "getStatus");
  await settle();
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "VERSION_MISMATCH");
  assert.equal(host.sent.length, 0);
});

test("when the host exits, open requests fail with HOST_UNAVAILABLE and a new host serves the next", async () => {
  const { host, bridge, keepAlive } = setup();
  const a = client("a");
  bridge.attach(a);
  request(bridge, a, 1, "getTicket");
  await settle();
  assert.deepEqual(keepAlive, [true]);
  host.exit();
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "HOST_UNAVAILABLE");
  assert.deepEqual(keepAlive, [true, false]);
  request(bridge, a, 2, "getStatus");
  await settle();
  assert.equal(host.connects, 2);
});

async function promptFor(env: ReturnType<typeof setup>, c: FakeClient, pageId: number, kind: "pin" | "consent" = "pin", prompt = 1) {
  request(env.bridge, c, pageId, "sign");
  await settle();
  const req = env.host.last("sign");
  env.host.send({ prompt, for: req.id, kind, data: kind === "pin" ? { origin: ALLOWED, protectedPath: false } : { origin: ALLOWED, description: "d", count: 2, algorithm: "RS256" } });
  await settle();
  return req;
}

test("a host prompt opens one extension window; the answer goes back as promptReply with the request's origin", async () => {
  const env = setup();
  const a = client("a");
  env.bridge.attach(a);
  await promptFor(env, a, 1);
  assert.equal(env.windows.opened.length, 1);
  const key = env.windows.opened[0]!;
  const view = env.bridge.promptView(key);
  assert.deepEqual(view && { kind: view.kind, origin: view.origin }, { kind: "pin", origin: ALLOWED });
  assert.ok(env.bridge.answerPrompt(key, "1234"));
  const reply = env.host.last("promptReply");
  assert.deepEqual(Object.keys(reply), ["id", "method", "origin", "params"]);
  assert.equal(reply.origin, ALLOWED);
  assert.deepEqual(reply.params, { prompt: 1, value: "1234" });
  assert.deepEqual(env.windows.closed, [100]);
  assert.equal(env.bridge.promptView(key), null, "a spent prompt cannot be read or answered again");
  assert.equal(env.bridge.answerPrompt(key, "5678"), false);
});

test("closing the prompt window cancels the prompt (the host then ends the request USER_CANCELLED)", async () => {
  const env = setup();
  const a = client("a");
  env.bridge.attach(a);
  const req = await promptFor(env, a, 1, "consent");
  env.bridge.onWindowClosed(100);
  assert.deepEqual(env.host.last("promptReply").params, { prompt: 1, cancel: true });
  env.host.send({ id: req.id, error: { code: "USER_CANCELLED", message: "You cancelled." } });
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "USER_CANCELLED");
  assert.deepEqual(env.windows.closed, [], "the closed window is not closed again");
});

test("a prompt nobody answers times out: the page gets TIMEOUT and the host a cancel", async () => {
  const env = setup({ allowedOrigins: null, promptTimeoutMs: 30_000 });
  const a = client("a");
  env.bridge.attach(a);
  const req = await promptFor(env, a, 1);
  env.fire(30_000);
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "TIMEOUT");
  assert.deepEqual(env.host.last("promptReply").params, { prompt: 1, cancel: true });
  assert.deepEqual(env.windows.closed, [100]);
  env.host.send({ id: req.id, error: { code: "USER_CANCELLED", message: "late" } });
  assert.equal(a.received.filter((m) => m.type === "response").length, 1, "the host's late answer is dropped");
});

test("one prompt per tab: a second prompt from the same tab is BUSY and opens no window", async () => {
  const env = setup();
  const a = client("a", ALLOWED, 7);
  const frame = client("f", ALLOWED, 7);
  env.bridge.attach(a);
  env.bridge.attach(frame);
  await promptFor(env, a, 1, "pin", 1);
  await promptFor(env, frame, 2, "pin", 2);
  assert.equal(env.windows.opened.length, 1);
  const answer = frame.responseTo(2);
  assert.ok(answer && "error" in answer && answer.error.code === "BUSY");
  assert.deepEqual(env.host.last("promptReply").params, { prompt: 2, cancel: true });
  const other = client("t2", ALLOWED, 8);
  env.bridge.attach(other);
  await promptFor(env, other, 3, "pin", 3);
  assert.equal(env.windows.opened.length, 2, "another tab may have its own window");
});

test("a frame that goes away cancels its open requests and closes their windows", async () => {
  const env = setup();
  const a = client("a");
  env.bridge.attach(a);
  const req = await promptFor(env, a, 1);
  env.bridge.detach(a);
  assert.deepEqual(env.host.last("cancel").params, { request: req.id });
  assert.deepEqual(env.windows.closed, [100]);
  assert.deepEqual(env.keepAlive, [true, false]);
});

test("card events reach subscribed frames of allowed origins only, under the page's names", async () => {
  const env = setup();
  const a = client("a");
  const quiet = client("q", ALLOWED, 2);
  const other = client("o", "https://other.example", 3);
  for (const c of [a, quiet, other]) env.bridge.attach(c);
  request(env.bridge, a, 1, "getStatus");
  env.bridge.onClientMessage(other, { type: "subscribe", secure: true, origin: "https://other.example" });
  await settle();
  env.host.send({ event: "cardRemoved", data: { reader: "Virtual PCD 00 00" } });
  env.host.send({ event: "sessionEnded", data: { reason: "cardRemoved" } });
  assert.deepEqual(a.received.filter((m) => m.type === "event"), [
    { type: "event", event: "cardremoved", detail: { reader: "Virtual PCD 00 00" } },
    { type: "event", event: "sessionended", detail: { reason: "cardRemoved" } },
  ]);
  assert.deepEqual(quiet.received, []);
  assert.deepEqual(other.received.filter((m) => m.type === "event"), []);
});

test("a frame cannot have more than the allowed number of requests in flight", async () => {
  const env = setup();
  const a = client("a");
  env.bridge.attach(a);
  for (let i = 0; i < 40; i++) request(env.bridge, a, i, "getTicket");
  await settle();
  assert.equal(env.host.sent.length, 32);
  const busy = a.received.filter((m) => "error" in m && m.error.code === "BUSY");
  assert.equal(busy.length, 8);
});

test("a page that only listens for events starts the host (if its origin could be allowed) and hears them", async () => {
  const env = setup();
  const listener = client("l");
  const insecure = client("i", "http://ehr.example", 2);
  env.bridge.attach(listener);
  env.bridge.attach(insecure);
  env.bridge.onClientMessage(insecure, { type: "subscribe", secure: false, origin: "http://ehr.example" });
  await settle();
  assert.equal(env.host.connects, 0, "an insecure page does not start the host");
  env.bridge.onClientMessage(listener, { type: "subscribe", secure: true, origin: ALLOWED });
  await settle();
  assert.equal(env.host.connects, 1);
  env.host.send({ event: "cardInserted", data: { reader: "r", atr: "3B" } });
  assert.deepEqual(listener.received, [{ type: "event", event: "cardinserted", detail: { reader: "r", atr: "3B" } }]);
  assert.deepEqual(insecure.received, []);
});

test("a host that speaks before saying ready is VERSION_MISMATCH", async () => {
  const env = setup();
  env.host.ready = null;
  const a = client("a");
  env.bridge.attach(a);
  request(env.bridge, a, 1, "getStatus");
  await settle();
  env.host.send({ id: 1, result: {} });
  await settle();
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "VERSION_MISMATCH");
});

test("a host that never says ready is HOST_UNAVAILABLE after the ready timeout", async () => {
  const env = setup();
  env.host.ready = null;
  const a = client("a");
  env.bridge.attach(a);
  request(env.bridge, a, 1, "getStatus");
  await settle();
  assert.equal(a.received.length, 0);
  env.fire(15_000);
  await settle();
  const answer = a.responseTo(1);
  assert.ok(answer && "error" in answer && answer.error.code === "HOST_UNAVAILABLE");
  assert.match(answer.error.message, /did not answer/);
});

test("a later ready from the host replaces its allowlist for the next requests", async () => {
  const env = setup();
  const a = client("a");
  env.bridge.attach(a);
  request(env.bridge, a, 1, "getTicketNoAuth");
  await settle();
  env.host.send({ id: env.host.last().id, result: { ticket: null } });
  env.host.send({ event: "ready", data: { version: "0.1.0", protocol: 1, agent: "none", allowedOrigins: [] } });
  request(env.bridge, a, 2, "getTicketNoAuth");
  await settle();
  const answer = a.responseTo(2);
  assert.ok(answer && "error" in answer && answer.error.code === "ORIGIN_NOT_ALLOWED");
  assert.equal(env.host.sent.length, 1);
});
