/**
 * The native messaging wire, protocol 1, as the extension sees it, and every
 * error code.  Mirrors `host/cisbridge/protocol.py` (CONTRACT §2–§3): change
 * both together.  No other file of the extension defines a message type or an
 * error code.
 */
import { CONFIG } from "./config";

// ---------------------------------------------------------------------------
// Error codes (CONTRACT §3): the same strings on every hop.

export const ERROR_CODES = [
  "EXTENSION_UNAVAILABLE",
  "HOST_UNAVAILABLE",
  "VERSION_MISMATCH",
  "ORIGIN_NOT_ALLOWED",
  "INSECURE_CONTEXT",
  "INVALID_REQUEST",
  "USER_CANCELLED",
  "TIMEOUT",
  "BUSY",
  "NO_READER",
  "NO_CARD",
  "CARD_REMOVED",
  "PIN_INCORRECT",
  "PIN_LOCKED",
  "NO_CERTIFICATE",
  "AGENT_UNAVAILABLE",
  "AUTHENTICATION_FAILED",
  "SIGNING_FAILED",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

const ERROR_CODE_SET: ReadonlySet<string> = new Set(ERROR_CODES);

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && ERROR_CODE_SET.has(value);
}

/** An error as it crosses a hop: a plain object, structured-clone and JSON safe. */
export interface WireError {
  code: ErrorCode;
  message: string;
  detail?: Record<string, unknown>;
}

/**
 * The one error class of the extension.  Thrown in the background, turned
 * into a WireError to cross a hop, and rebuilt on the other side (the page
 * script has its own copy with the same shape, since it lives in the page's
 * realm; see `page/cis-auth.ts`).
 */
export class CisAuthError extends Error {
  readonly code: ErrorCode;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, detail?: Record<string, unknown>) {
    super(message);
    this.name = "CisAuthError";
    this.code = code;
    this.detail = detail;
  }

  toWire(): WireError {
    return toWireError(this);
  }
}

/** Any thrown value as a WireError; unknown failures become INTERNAL without leaking their text. */
export function toWireError(err: unknown): WireError {
  if (err instanceof CisAuthError) {
    const wire: WireError = { code: err.code, message: err.message };
    if (err.detail !== undefined) wire.detail = err.detail;
    return wire;
  }
  const rebuilt = fromWireError(err);
  if (rebuilt) return rebuilt.toWire();
  return {
    code: "INTERNAL",
    message: "Something went wrong inside the cisbridge extension. Reload the page and try again; if it keeps happening, run `cisbridge doctor`.",
  };
}

/** Rebuilds a CisAuthError from a wire error object, or null when the value is not one. */
export function fromWireError(value: unknown): CisAuthError | null {
  if (!isPlainObject(value)) return null;
  const { code, message, detail } = value;
  if (!isErrorCode(code) || typeof message !== "string") return null;
  return new CisAuthError(code, message, isPlainObject(detail) ? detail : undefined);
}

// ---------------------------------------------------------------------------
// Requests (extension -> host)

export type RequestId = number | string;

/** Methods a page may call (CONTRACT §1). */
export const PAGE_METHODS = ["getTicket", "getTicketNoAuth", "getCertificate", "sign", "getStatus"] as const;
export type PageMethod = (typeof PAGE_METHODS)[number];

const PAGE_METHOD_SET: ReadonlySet<string> = new Set(PAGE_METHODS);
export function isPageMethod(value: unknown): value is PageMethod {
  return typeof value === "string" && PAGE_METHOD_SET.has(value);
}

export type Method = PageMethod | "promptReply" | "cancel";

export interface NativeRequest {
  id: RequestId;
  method: Method;
  origin: string;
  params: Record<string, unknown>;
}

/**
 * Builds a request frame with `id` as the first key, so the host can recover
 * the id even from a frame it refuses to parse whole (an oversize one).
 */
export function makeRequest(id: RequestId, method: Method, origin: string, params: Record<string, unknown>): NativeRequest {
  return { id, method, origin, params };
}

export type PromptKind = "pin" | "role" | "consent";

export interface PromptReplyParams {
  prompt: number;
  value?: string | boolean;
  cancel?: true;
}

// ---------------------------------------------------------------------------
// Frames (host -> extension)

export interface ReadyData {
  version: string;
  protocol: number;
  agent: string;
  allowedOrigins: string[];
}

export type HostEventName = "ready" | "cardInserted" | "cardRemoved" | "sessionEnded";

export interface PinPromptData {
  origin: string;
  protectedPath: boolean;
  attemptsLeft?: number;
}
export interface Role {
  id: string;
  org: string;
  orgCode: string;
  name: string;
}
export interface RolePromptData {
  roles: Role[];
}
export interface ConsentPromptData {
  origin: string;
  description: string;
  count: number;
  algorithm: "RS1" | "RS256";
}

export type HostFrame =
  | { type: "result"; id: RequestId; result: Record<string, unknown> }
  | { type: "error"; id: RequestId | null; error: WireError }
  | { type: "event"; event: HostEventName; data: Record<string, unknown> }
  | { type: "prompt"; prompt: number; for: RequestId; kind: PromptKind; data: Record<string, unknown> };

const HOST_EVENTS: ReadonlySet<string> = new Set(["ready", "cardInserted", "cardRemoved", "sessionEnded"]);
const PROMPT_KINDS: ReadonlySet<string> = new Set(["pin", "role", "consent"]);

function isRequestId(value: unknown): value is RequestId {
  return (typeof value === "number" && Number.isSafeInteger(value)) || (typeof value === "string" && value.length > 0);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Classifies one frame from the host, or returns null when it matches no
 * frame of protocol 1 (the caller logs and drops it: the host is trusted, but
 * a bug there must not become a crash here).
 */
export function classifyHostFrame(frame: unknown): HostFrame | null {
  if (!isPlainObject(frame)) return null;
  if ("event" in frame) {
    if (typeof frame.event !== "string" || !HOST_EVENTS.has(frame.event)) return null;
    return { type: "event", event: frame.event as HostEventName, data: isPlainObject(frame.data) ? frame.data : {} };
  }
  if ("prompt" in frame) {
    const { prompt, kind, data } = frame;
    if (typeof prompt !== "number" || !Number.isSafeInteger(prompt) || !isRequestId(frame.for)) return null;
    if (typeof kind !== "string" || !PROMPT_KINDS.has(kind) || !isPlainObject(data)) return null;
    return { type: "prompt", prompt, for: frame.for, kind: kind as PromptKind, data };
  }
  if ("error" in frame) {
    const error = fromWireError(frame.error);
    if (!error || !(frame.id === null || isRequestId(frame.id))) return null;
    return { type: "error", id: frame.id, error: error.toWire() };
  }
  if ("result" in frame && isRequestId(frame.id)) {
    return { type: "result", id: frame.id, result: isPlainObject(frame.result) ? frame.result : {} };
  }
  return null;
}

/**
 * Checks the host's `ready` data: the protocol must be ours.  Throws
 * VERSION_MISMATCH naming the side to update, or returns the data typed.
 */
export function checkReady(data: Record<string, unknown>): ReadyData {
  const { version, protocol, agent, allowedOrigins } = data;
  if (typeof protocol !== "number") {
    throw new CisAuthError(
      "VERSION_MISMATCH",
      "The cisbridge host did not say which protocol it speaks, so it is probably too old for this extension. Update the cisbridge host, then run `cisbridge doctor`.",
    );
  }
  if (protocol !== CONFIG.PROTOCOL) {
    const side = protocol > CONFIG.PROTOCOL ? "the cisbridge browser extension" : "the cisbridge host program on this computer";
    throw new CisAuthError(
      "VERSION_MISMATCH",
      `The cisbridge host speaks protocol ${protocol} but this extension speaks protocol ${CONFIG.PROTOCOL}. Update ${side}.`,
      { hostProtocol: protocol, extensionProtocol: CONFIG.PROTOCOL, hostVersion: typeof version === "string" ? version : null },
    );
  }
  const origins = Array.isArray(allowedOrigins) ? allowedOrigins.filter((o): o is string => typeof o === "string") : [];
  return {
    version: typeof version === "string" ? version : "unknown",
    protocol,
    agent: typeof agent === "string" ? agent : "unknown",
    allowedOrigins: origins,
  };
}

/** Host event names -> the page's event types (CONTRACT §1). */
export const PAGE_EVENT_OF: Readonly<Record<Exclude<HostEventName, "ready">, string>> = Object.freeze({
  cardInserted: "cardinserted",
  cardRemoved: "cardremoved",
  sessionEnded: "sessionended",
});

// ---------------------------------------------------------------------------
// Browser errors about the native host -> HOST_UNAVAILABLE

const DOCTOR = "Run `cisbridge doctor` on this computer to find and fix the problem, then reload this page.";

/**
 * Turns what the browser says when the native host cannot be reached into a
 * HOST_UNAVAILABLE error that tells the person what to do.
 */
export function hostUnavailable(browserMessage: string | undefined): CisAuthError {
  const text = (browserMessage ?? "").trim();
  const lower = text.toLowerCase();
  let what: string;
  if (lower.includes("not found") || lower.includes("no such native application")) {
    what = "The cisbridge host program is not installed for this browser (or its registration is broken).";
  } else if (lower.includes("forbidden")) {
    what = "The cisbridge host program does not allow this browser extension to use it.";
  } else if (lower.includes("exited") || lower.includes("disconnect")) {
    what = "The cisbridge host program stopped unexpectedly.";
  } else if (lower.includes("did not")) {
    what = "The cisbridge host program started but did not answer.";
  } else {
    what = "The cisbridge host program could not be reached.";
  }
  return new CisAuthError("HOST_UNAVAILABLE", `${what} ${DOCTOR}`, text ? { browserMessage: text } : undefined);
}
