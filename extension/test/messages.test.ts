import assert from "node:assert/strict";
import { test } from "node:test";
import { CONFIG } from "../src/config";
import { judgeClientMessage, judgePageMessage, judgePromptPageMessage } from "../src/messages";
import { parsePolicy, policySource, rememberedPolicy, type PolicyStore } from "../src/background/policy";
import { formatRemaining, promptModel, roleLabel, roleShortName, MAX_DESCRIPTION } from "../src/prompt/model";

const NS = CONFIG.PAGE_NAMESPACE;

test("window messages outside our namespace or direction are ignored", () => {
  for (const data of [null, "x", { ns: "other", dir: "request", id: 1, method: "getStatus" }, { ns: NS, dir: "response", id: 1 }, { ns: NS, dir: "request", id: -1, method: "getStatus" }, { ns: NS, dir: "request", id: "1", method: "getStatus" }]) {
    assert.deepEqual(judgePageMessage(data), { kind: "ignore" });
  }
});

test("a page request is copied as plain JSON; an unknown method or odd argument is INVALID_REQUEST", () => {
  const verdict = judgePageMessage({ ns: NS, dir: "request", id: 4, method: "sign", params: { algorithm: "RS256", payloads: [], when: new Date(0) } });
  assert.equal(verdict.kind, "request");
  if (verdict.kind === "request") assert.equal(verdict.message.params.when, "1970-01-01T00:00:00.000Z");
  assert.equal(judgePageMessage({ ns: NS, dir: "request", id: 4, method: "promptReply", params: {} }).kind, "invalid");
  assert.equal(judgePageMessage({ ns: NS, dir: "request", id: 4, method: "getStatus", params: [1] }).kind, "invalid");
  const big = "x".repeat(CONFIG.MAX_REQUEST_CHARS);
  assert.equal(judgePageMessage({ ns: NS, dir: "request", id: 4, method: "sign", params: { big } }).kind, "invalid");
  assert.deepEqual(judgePageMessage({ ns: NS, dir: "subscribe" }), { kind: "subscribe" });
});

test("the page cannot ask for promptReply or cancel through the relay", () => {
  for (const method of ["promptReply", "cancel"]) {
    assert.equal(judgeClientMessage({ type: "request", id: 1, method, params: {}, secure: true, origin: "https://a" }), null);
  }
  assert.ok(judgeClientMessage({ type: "request", id: 1, method: "getStatus", params: {}, secure: true, origin: "https://a" }));
  assert.equal(judgeClientMessage({ type: "request", id: 1, method: "getStatus", params: {}, origin: "https://a" }), null);
});

test("prompt page messages need a long key and a bounded value", () => {
  const key = "0123456789abcdef0123456789abcdef";
  assert.deepEqual(judgePromptPageMessage({ type: "prompt:get", key }), { type: "prompt:get", key });
  assert.equal(judgePromptPageMessage({ type: "prompt:get", key: "short" }), null);
  assert.equal(judgePromptPageMessage({ type: "prompt:answer", key, value: "x".repeat(257) }), null);
  assert.equal(judgePromptPageMessage({ type: "prompt:answer", key, value: { a: 1 } }), null);
  assert.deepEqual(judgePromptPageMessage({ type: "prompt:answer", key, value: true }), { type: "prompt:answer", key, value: true });
});

test("policy: allowedOrigins list or null; prompt timeout clamped", () => {
  assert.deepEqual(parsePolicy({}), { allowedOrigins: null, promptTimeoutMs: CONFIG.PROMPT_TIMEOUT_MS });
  assert.deepEqual(parsePolicy({ allowedOrigins: ["https://a", 3], promptTimeoutSeconds: 60 }), { allowedOrigins: ["https://a"], promptTimeoutMs: 60_000 });
  assert.equal(parsePolicy({ promptTimeoutSeconds: 1 }).promptTimeoutMs, CONFIG.PROMPT_TIMEOUT_MIN_MS);
  assert.equal(parsePolicy({ promptTimeoutSeconds: 1e9 }).promptTimeoutMs, CONFIG.PROMPT_TIMEOUT_MAX_MS);
  assert.equal(parsePolicy({ promptTimeoutSeconds: "60" }).promptTimeoutMs, CONFIG.PROMPT_TIMEOUT_MS);
});

test("prompt models: pin, role and consent data are checked before anything is shown", () => {
  const base = { origin: "https://ehr.example", deadline: 0 };
  assert.deepEqual(promptModel({ ...base, kind: "pin", data: { origin: "x", protectedPath: true, attemptsLeft: 2 } }), {
    kind: "pin", origin: "https://ehr.example", protectedPath: true, attemptsLeft: 2, retry: false,
  });
  assert.equal((promptModel({ ...base, kind: "pin", data: { attemptsLeft: "2" } }) as { attemptsLeft: unknown }).attemptsLeft, null);
  assert.equal(promptModel({ ...base, kind: "role", data: { roles: [] } }), null);
  assert.equal(promptModel({ ...base, kind: "role", data: { roles: [{ id: 3 }] } }), null);
  const role = promptModel({ ...base, kind: "role", data: { roles: [{ id: "r1", org: "Leeds GP", orgCode: "B86001", name: "GP" }] } });
  assert.equal(role?.kind, "role");
  if (role?.kind === "role") assert.equal(roleLabel(role.roles[0]!), "GP — Leeds GP (B86001)");
  const consent = promptModel({ ...base, kind: "consent", data: { origin: "x", description: "y".repeat(2000), count: 3, algorithm: "RS256" } });
  assert.equal(consent?.kind, "consent");
  if (consent?.kind === "consent") assert.equal(consent.description.length, MAX_DESCRIPTION);
  assert.equal(promptModel({ ...base, kind: "consent", data: { count: 3, algorithm: "MD5" } }), null);
  assert.equal(formatRemaining(61_000), "1:01");
  assert.equal(formatRemaining(-5), "0:00");
});

test("a role is shown by its job role, not the Spine's whole path", () => {
  assert.equal(roleShortName('"Clinical":"Clinical Provision":"Nurse Access Role"'), "Nurse Access Role");
  assert.equal(roleShortName("GP"), "GP");
  assert.equal(
    roleLabel({ id: "1", name: '"Admin & Clerical":"Admin & Clerical":"Registration Authority Agent"', org: "CISBRIDGE TEST SURGERY", orgCode: "Y42" }),
    "Registration Authority Agent — CISBRIDGE TEST SURGERY (Y42)",
  );
});

test("a passcode prompt after a wrong passcode says so", () => {
  const base = { origin: "https://ehr.example", deadline: 0 };
  const again = promptModel({ ...base, kind: "pin", data: { origin: "x", protectedPath: false, retry: true } });
  assert.ok(again?.kind === "pin" && again.retry);
  const first = promptModel({ ...base, kind: "pin", data: { origin: "x", protectedPath: false } });
  assert.ok(first?.kind === "pin" && !first.retry);
});


function policyStore(managed: Promise<Record<string, unknown>>, remembered: unknown) {
  const timers: Array<() => void> = [];
  const saved: unknown[] = [];
  const store: PolicyStore = {
    readManaged: () => managed,
    readRemembered: async () => rememberedPolicy(remembered),
    remember: async (policy) => void saved.push(policy),
    setTimeout: (fn) => timers.push(fn),
  };
  return { store, timers, saved };
}

test("policy: a fresh read is used and remembered", async () => {
  const { store, saved } = policyStore(Promise.resolve({ allowedOrigins: ["https://a"] }), null);
  const policy = await policySource(store).current();
  assert.deepEqual(policy.allowedOrigins, ["https://a"]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual((saved[0] as { allowedOrigins: string[] }).allowedOrigins, ["https://a"]);
});

test("policy: while Chromium's first read is slow, the last-read policy stands in, then the fresh one", async () => {
  let answer: (raw: Record<string, unknown>) => void = () => undefined;
  const slow = new Promise<Record<string, unknown>>((resolve) => (answer = resolve));
  const { store, timers } = policyStore(slow, { allowedOrigins: ["https://old"], promptTimeoutMs: 60_000 });
  const source = policySource(store);
  const first = source.current();
  timers.forEach((fire) => fire()); // the fresh-read wait is over
  assert.deepEqual((await first).allowedOrigins, ["https://old"]);
  answer({ allowedOrigins: ["https://new"] });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual((await source.current()).allowedOrigins, ["https://new"]);
});

test("policy: with nothing remembered, requests wait for the fresh read", async () => {
  let answer: (raw: Record<string, unknown>) => void = () => undefined;
  const slow = new Promise<Record<string, unknown>>((resolve) => (answer = resolve));
  const { store, timers } = policyStore(slow, null);
  let settled = false;
  const first = policySource(store).current().then((p) => ((settled = true), p));
  timers.forEach((fire) => fire());
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false);
  answer({});
  assert.equal((await first).allowedOrigins, null);
});

test("policy: an empty read (policy service not ready yet) is read again; a policy found then applies", async () => {
  const reads = [{}, {}, { allowedOrigins: ["https://late"] }];
  const timers: Array<[() => void, number]> = [];
  const saved: unknown[] = [];
  const store: PolicyStore = {
    readManaged: async () => reads.shift() ?? {},
    readRemembered: async () => null,
    remember: async (policy) => void saved.push(policy),
    setTimeout: (fn, ms) => void timers.push([fn, ms]),
  };
  const settle = () => new Promise((r) => setImmediate(r));
  const fire = async (ms: number) => {
    const due = timers.filter(([, at]) => at === ms);
    assert.equal(due.length, 1, `one timer of ${ms} ms`);
    timers.splice(timers.indexOf(due[0]), 1);
    due[0][0]();
    await settle();
  };
  const source = policySource(store);
  assert.equal((await source.current()).allowedOrigins, null); // empty: no narrowing yet
  await settle();
  const [first, second] = CONFIG.POLICY_EMPTY_REREAD_MS;
  await fire(first); // still empty: read again later
  assert.equal((await source.current()).allowedOrigins, null);
  await fire(second);
  assert.deepEqual((await source.current()).allowedOrigins, ["https://late"]);
  assert.deepEqual((saved.at(-1) as { allowedOrigins: string[] }).allowedOrigins, ["https://late"]);
  assert.equal(timers.filter(([, ms]) => CONFIG.POLICY_EMPTY_REREAD_MS.includes(ms)).length, 0); // no more re-reads
});

test("policy: re-reads stop once the policy is forgotten (a change event came)", async () => {
  const timers: Array<() => void> = [];
  let readsDone = 0;
  const store: PolicyStore = {
    readManaged: async () => (readsDone++, {}),
    readRemembered: async () => null,
    remember: async () => undefined,
    setTimeout: (fn) => void timers.push(fn),
  };
  const source = policySource(store);
  await source.current();
  await new Promise((r) => setImmediate(r));
  source.forget();
  const before = readsDone;
  timers.splice(0).forEach((fire) => fire());
  await new Promise((r) => setImmediate(r));
  assert.equal(readsDone, before);
});

test("policy: a remembered policy that is not a Policy is not used", () => {
  assert.equal(rememberedPolicy({ allowedOrigins: [1], promptTimeoutMs: 5 }), null);
  assert.equal(rememberedPolicy("x"), null);
  assert.deepEqual(rememberedPolicy({ allowedOrigins: null, promptTimeoutMs: 60_000 })?.allowedOrigins, null);
});
