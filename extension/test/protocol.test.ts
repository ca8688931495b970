import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CisAuthError,
  ERROR_CODES,
  checkReady,
  classifyHostFrame,
  fromWireError,
  hostUnavailable,
  makeRequest,
  toWireError,
} from "../src/protocol";

test("every CONTRACT §3 error code is known, and only those", () => {
  assert.equal(ERROR_CODES.length, 19);
  assert.ok(ERROR_CODES.includes("PIN_INCORRECT"));
  assert.equal(fromWireError({ code: "NOT_A_CODE", message: "x" }), null);
});

test("errors survive a hop: CisAuthError -> wire -> CisAuthError keeps name, code, message, detail", () => {
  const original = new CisAuthError("PIN_INCORRECT", "Wrong passcode.", { attemptsLeft: 2 });
  const wire = JSON.parse(JSON.stringify(original.toWire()));
  const rebuilt = fromWireError(wire);
  assert.ok(rebuilt instanceof CisAuthError);
  assert.equal(rebuilt.name, "CisAuthError");
  assert.equal(rebuilt.code, "PIN_INCORRECT");
  assert.equal(rebuilt.message, "Wrong passcode.");
  assert.deepEqual(rebuilt.detail, { attemptsLeft: 2 });
});

test("an unexpected exception crosses as INTERNAL without its text", () => {
  const wire = toWireError(new TypeError("secret internals 1234"));
  assert.equal(wire.code, "INTERNAL");
  assert.ok(!wire.message.includes("1234"));
});

test("request frames put id first so the host can recover it from an oversize frame", () => {
  const frame = makeRequest(7, "sign", "https://ehr.example", { algorithm: "RS256", payloads: [] });
  assert.deepEqual(Object.keys(frame), ["id", "method", "origin", "params"]);
  assert.ok(JSON.stringify(frame).startsWith('{"id":7,'));
});

test("host frames are classified by shape", () => {
  assert.deepEqual(classifyHostFrame({ id: 1, result: { ticket: null } }), { type: "result", id: 1, result: { ticket: null } });
  assert.deepEqual(classifyHostFrame({ id: 2, error: { code: "BUSY", message: "m" } }), {
    type: "error",
    id: 2,
    error: { code: "BUSY", message: "m" },
  });
  assert.equal(classifyHostFrame({ id: null, error: { code: "INVALID_REQUEST", message: "m" } })?.type, "error");
  assert.deepEqual(classifyHostFrame({ prompt: 3, for: 1, kind: "pin", data: { origin: "o", protectedPath: false } }), {
    type: "prompt",
    prompt: 3,
    for: 1,
    kind: "pin",
    data: { origin: "o", protectedPath: false },
  });
  assert.equal(classifyHostFrame({ event: "cardRemoved", data: { reader: "r" } })?.type, "event");
});

test("frames of no known shape are dropped, not trusted", () => {
  for (const bad of [null, 3, "x", [], { event: "hack" }, { prompt: 1, for: 1, kind: "shell", data: {} }, { id: 1, error: { code: "NOPE", message: "" } }, { result: {} }]) {
    assert.equal(classifyHostFrame(bad), null, JSON.stringify(bad));
  }
});

test("ready with protocol 1 is accepted and typed", () => {
  const info = checkReady({ version: "0.1.0", protocol: 1, agent: "none", allowedOrigins: ["https://a.example", 5] });
  assert.deepEqual(info, { version: "0.1.0", protocol: 1, agent: "none", allowedOrigins: ["https://a.example"] });
});

test("a newer host protocol asks to update the extension; an older one asks to update the host", () => {
  assert.throws(() => checkReady({ version: "9", protocol: 2, agent: "none", allowedOrigins: [] }), (e: CisAuthError) => {
    assert.equal(e.code, "VERSION_MISMATCH");
    assert.match(e.message, /Update the cisbridge browser extension/);
    return true;
  });
  assert.throws(() => checkReady({ version: "0", protocol: 0, agent: "none", allowedOrigins: [] }), (e: CisAuthError) => {
    assert.equal(e.code, "VERSION_MISMATCH");
    assert.match(e.message, /host program/);
    return true;
  });
  assert.throws(() => checkReady({ version: "0" }), { code: "VERSION_MISMATCH" });
});

test("the browsers' native messaging errors become HOST_UNAVAILABLE that say to run cisbridge doctor", () => {
  const cases: Array<[string, RegExp]> = [
    ["Specified native messaging host not found.", /not installed/],
    ["Native host has exited.", /stopped unexpectedly/],
    ["Access to the specified native messaging host is forbidden.", /does not allow this browser extension/],
    ["No such native application org.cisbridge.host", /not installed/],
  ];
  for (const [browserMessage, what] of cases) {
    const error = hostUnavailable(browserMessage);
    assert.equal(error.code, "HOST_UNAVAILABLE");
    assert.match(error.message, what);
    assert.match(error.message, /`cisbridge doctor`/);
    assert.deepEqual(error.detail, { browserMessage });
  }
});
