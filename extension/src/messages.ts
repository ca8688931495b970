/**
 * Messages between the extension's own pieces (page script ⇄ content script ⇄
 * background ⇄ prompt window), with validators for the hops where the sender
 * is less trusted than the receiver.
 */
import { CONFIG } from "./config";
import { isPageMethod, isPlainObject, type PageMethod, type PromptKind, type WireError } from "./protocol";

// ---------------------------------------------------------------------------
// Page script ⇄ content script (window.postMessage on the page's own window)

export interface PageRequestMessage {
  ns: typeof CONFIG.PAGE_NAMESPACE;
  dir: "request";
  id: number;
  method: PageMethod;
  params: Record<string, unknown>;
}
export interface PageSubscribeMessage {
  ns: typeof CONFIG.PAGE_NAMESPACE;
  dir: "subscribe";
}
export type PageToContent = PageRequestMessage | PageSubscribeMessage;

export type ContentToPage =
  | { ns: typeof CONFIG.PAGE_NAMESPACE; dir: "response"; id: number; result: unknown }
  | { ns: typeof CONFIG.PAGE_NAMESPACE; dir: "response"; id: number; error: WireError }
  | { ns: typeof CONFIG.PAGE_NAMESPACE; dir: "event"; event: string; detail: unknown };

/** What the content script makes of a window message: a request, a subscription, a malformed request (answered with INVALID_REQUEST), or nothing of ours. */
export type PageMessageVerdict =
  | { kind: "request"; message: PageRequestMessage }
  | { kind: "subscribe" }
  | { kind: "invalid"; id: number; reason: string }
  | { kind: "ignore" };

/**
 * Judges one window message in the content script.  Accepts only messages the
 * page's own window posted to itself (`source === window`, checked by the
 * caller who has the event) in our namespace; `params` is copied through JSON
 * so only plain data goes on.
 */
export function judgePageMessage(data: unknown): PageMessageVerdict {
  if (!isPlainObject(data) || data.ns !== CONFIG.PAGE_NAMESPACE) return { kind: "ignore" };
  if (data.dir === "subscribe") return { kind: "subscribe" };
  if (data.dir !== "request") return { kind: "ignore" };
  const { id, method, params } = data;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) return { kind: "ignore" };
  if (!isPageMethod(method)) return { kind: "invalid", id, reason: `cisAuth has no method ${JSON.stringify(String(method))}.` };
  if (params !== undefined && !isPlainObject(params)) return { kind: "invalid", id, reason: "The request's argument must be an object." };
  let copy: Record<string, unknown>;
  try {
    const text = JSON.stringify(params ?? {});
    if (text.length > CONFIG.MAX_REQUEST_CHARS) {
      return { kind: "invalid", id, reason: `The request is too large (${text.length} characters; at most ${CONFIG.MAX_REQUEST_CHARS}).` };
    }
    copy = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { kind: "invalid", id, reason: "The request's argument must be plain JSON data." };
  }
  return { kind: "request", message: { ns: CONFIG.PAGE_NAMESPACE, dir: "request", id, method, params: copy } };
}

// ---------------------------------------------------------------------------
// Content script ⇄ background (a runtime Port named CONFIG.PORT_NAME)

export interface ClientRequest {
  type: "request";
  id: number;
  method: PageMethod;
  params: Record<string, unknown>;
  /** The frame's isSecureContext and origin as the content script (isolated world) reads them. */
  secure: boolean;
  origin: string;
}
export interface ClientSubscribe {
  type: "subscribe";
  secure: boolean;
  origin: string;
}
export type ContentToBackground = ClientRequest | ClientSubscribe;

export type BackgroundToContent =
  | { type: "response"; id: number; result: unknown }
  | { type: "response"; id: number; error: WireError }
  | { type: "event"; event: string; detail: unknown };

/** Validates what arrives on a content script's port (a compromised renderer could send anything). */
export function judgeClientMessage(data: unknown): ContentToBackground | null {
  if (!isPlainObject(data) || typeof data.secure !== "boolean" || typeof data.origin !== "string") return null;
  if (data.type === "subscribe") return { type: "subscribe", secure: data.secure, origin: data.origin };
  if (data.type !== "request") return null;
  const { id, method, params } = data;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || !isPageMethod(method) || !isPlainObject(params)) return null;
  return { type: "request", id, method, params, secure: data.secure, origin: data.origin };
}

// ---------------------------------------------------------------------------
// Prompt window ⇄ background (runtime.sendMessage from an extension page)

export type PromptPageMessage =
  | { type: "prompt:get"; key: string }
  | { type: "prompt:answer"; key: string; value: string | boolean }
  | { type: "prompt:cancel"; key: string };

export interface PromptView {
  kind: PromptKind;
  /** The requesting origin as the extension knows it (not as the host says it). */
  origin: string;
  data: Record<string, unknown>;
  /** When the prompt gives up, as epoch milliseconds. */
  deadline: number;
}

export function judgePromptPageMessage(data: unknown): PromptPageMessage | null {
  if (!isPlainObject(data) || typeof data.key !== "string" || data.key.length < 16 || data.key.length > 64) return null;
  if (data.type === "prompt:get") return { type: "prompt:get", key: data.key };
  if (data.type === "prompt:cancel") return { type: "prompt:cancel", key: data.key };
  if (data.type === "prompt:answer") {
    const { value } = data;
    if (typeof value === "boolean" || (typeof value === "string" && value.length <= 256)) {
      return { type: "prompt:answer", key: data.key, value };
    }
  }
  return null;
}
