import assert from "node:assert/strict";
import { test } from "node:test";
import { checkOrigin, effectiveAllowlist, isSecureOrigin, normaliseOrigin, senderOrigin } from "../src/origins";
import type { CisAuthError } from "../src/protocol";

test("origins are normalised; anything that is not an http(s) origin is refused", () => {
  assert.equal(normaliseOrigin("https://EHR.Example.nhs.uk:443"), "https://ehr.example.nhs.uk");
  assert.equal(normaliseOrigin("https://ehr.example/"), "https://ehr.example");
  assert.equal(normaliseOrigin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
  for (const bad of ["null", "", "ehr.example", "https://ehr.example/path", "https://u:p@ehr.example", "file:///etc", "chrome-extension://abc"]) {
    assert.equal(normaliseOrigin(bad), null, bad);
  }
});

test("secure origins: https anywhere, http only on loopback", () => {
  for (const ok of ["https://ehr.example", "http://localhost:3000", "http://127.0.0.1:8000", "http://127.9.9.9", "http://[::1]:8080"]) {
    assert.ok(isSecureOrigin(ok), ok);
  }
  for (const bad of ["http://ehr.example", "http://127.0.0.1.evil.example", "http://localhost.evil.example", "http://128.0.0.1", "null"]) {
    assert.ok(!isSecureOrigin(bad), bad);
  }
});

test("the sender's origin comes from the browser; a sandboxed frame is 'null'", () => {
  assert.equal(senderOrigin({ origin: "https://ehr.example", url: "https://ehr.example/a?b" }), "https://ehr.example");
  assert.equal(senderOrigin({ url: "https://ehr.example/a?b" }), "https://ehr.example");
  assert.equal(senderOrigin({ origin: "null", url: "https://ehr.example/sandboxed" }), "null");
  assert.equal(senderOrigin({ url: "about:blank" }), "null");
  assert.equal(senderOrigin({}), "null");
});

test("the content script's own reading can only narrow the sender's origin, never change it", () => {
  assert.equal(senderOrigin({ url: "https://ehr.example/", contentOrigin: "https://ehr.example" }), "https://ehr.example");
  assert.equal(senderOrigin({ url: "https://ehr.example/", contentOrigin: "null" }), "null");
  assert.equal(senderOrigin({ url: "https://evil.example/", contentOrigin: "https://ehr.example" }), "null");
});

test("with enterprise policy the allowlist is the intersection; without, the host's", () => {
  const host = ["https://a.example", "https://b.example", "not an origin"];
  assert.deepEqual([...effectiveAllowlist(host, null)].sort(), ["https://a.example", "https://b.example"]);
  assert.deepEqual([...effectiveAllowlist(host, ["https://B.example/", "https://c.example"])], ["https://b.example"]);
  assert.deepEqual([...effectiveAllowlist(host, [])], []);
});

test("checkOrigin: null and insecure before the allowlist, then ORIGIN_NOT_ALLOWED", () => {
  const allowed = new Set(["https://ehr.example", "http://ehr-http.example"]);
  const codeOf = (origin: string, secure: boolean): string => {
    try {
      checkOrigin(origin, secure, allowed);
      return "ok";
    } catch (e) {
      return (e as CisAuthError).code;
    }
  };
  assert.equal(codeOf("https://ehr.example", true), "ok");
  assert.equal(codeOf("https://ehr.example", false), "INSECURE_CONTEXT");
  assert.equal(codeOf("http://ehr-http.example", true), "INSECURE_CONTEXT");
  assert.equal(codeOf("https://other.example", true), "ORIGIN_NOT_ALLOWED");
  assert.equal(codeOf("null", true), "ORIGIN_NOT_ALLOWED");
});
