/**
 * Which page origins get a working API.  Pure functions: the background feeds
 * them what the browser says about the sender, never what a page says.
 */
import { CisAuthError } from "./protocol";

/** Hosts that count as loopback for http origins (CONTRACT §1). */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === "localhost" || host === "[::1]") return true;
  return /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(host) && host.split(".").every((part) => Number(part) <= 255);
}

/**
 * The canonical form of an origin string (`scheme://host[:port]`, lower case,
 * default port dropped), or null for anything that is not a tuple origin of
 * http(s) — including "null", paths, credentials and other schemes.
 */
export function normaliseOrigin(value: string): string | null {
  if (typeof value !== "string" || value === "null") return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (url.username || url.password) return null;
  // An origin has nothing after the port; tolerate only a bare trailing "/".
  const rest = value.slice(value.indexOf("//") + 2);
  const slash = rest.indexOf("/");
  if (slash !== -1 && rest.slice(slash) !== "/") return null;
  return url.origin;
}

/** Origin of a URL, "null" when it has none that counts. */
export function originOfUrl(url: string | undefined): string {
  if (!url) return "null";
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return "null";
    return parsed.origin;
  } catch {
    return "null";
  }
}

/** What the browser told us about a message sender (a subset of runtime.MessageSender). */
export interface SenderFacts {
  /** runtime.MessageSender.origin (Chromium; opaque origins are "null"). */
  origin?: string | undefined;
  /** runtime.MessageSender.url: the frame's URL. */
  url?: string | undefined;
  /** The origin the content script read from its own (isolated) view of the frame. */
  contentOrigin?: string | undefined;
}

/**
 * The origin a frame's request is judged by: its own, as the browser reports
 * it.  Where the browser gives `origin` that wins (it sees sandboxing, which a
 * URL does not); otherwise the frame URL's origin.  When the content script's
 * own reading disagrees (a sandboxed frame in a browser that reports only the
 * URL), the answer is "null", which is never allowed.
 */
export function senderOrigin(facts: SenderFacts): string {
  const fromBrowser = facts.origin !== undefined && facts.origin !== "" ? facts.origin : originOfUrl(facts.url);
  if (fromBrowser === "null") return "null";
  const canonical = normaliseOrigin(fromBrowser);
  if (canonical === null) return "null";
  if (facts.contentOrigin !== undefined && normaliseOrigin(facts.contentOrigin) !== canonical) return "null";
  return canonical;
}

/**
 * Secure enough for the API: https, or http on a loopback host.  (Whether a
 * loopback http origin is allowed is the allowlist's business.)
 */
export function isSecureOrigin(origin: string): boolean {
  const canonical = normaliseOrigin(origin);
  if (canonical === null) return false;
  const url = new URL(canonical);
  return url.protocol === "https:" || isLoopbackHost(url.hostname);
}

/**
 * The effective allowlist: the host's, narrowed by enterprise policy when the
 * policy sets a list.  Entries that are not origins are dropped.
 */
export function effectiveAllowlist(hostOrigins: readonly string[], policyOrigins: readonly string[] | null): ReadonlySet<string> {
  const host = originSet(hostOrigins);
  if (policyOrigins === null) return host;
  const policy = originSet(policyOrigins);
  return new Set([...host].filter((o) => policy.has(o)));
}

/** A list of origins as a set of canonical origins; entries that are not origins are dropped. */
export function originSet(origins: readonly string[]): ReadonlySet<string> {
  return new Set(origins.map(normaliseOrigin).filter((o): o is string => o !== null));
}

/**
 * Throws the error a request from `origin` gets, or returns when the origin
 * may use the API.  `secureContext` is the frame's own isSecureContext as the
 * content script read it (an https frame inside an http page is not secure).
 */
export function checkOrigin(origin: string, secureContext: boolean, allowed: ReadonlySet<string>): void {
  if (origin === "null") {
    throw new CisAuthError(
      "ORIGIN_NOT_ALLOWED",
      "This page has no origin that cisbridge can check (a sandboxed frame, a file or a data URL), so it cannot use the smartcard.",
    );
  }
  if (!isSecureOrigin(origin) || !secureContext) {
    throw new CisAuthError(
      "INSECURE_CONTEXT",
      `${origin} is not a secure context: smartcard access needs an https page (or http on this computer's own loopback address).`,
      { origin },
    );
  }
  if (!allowed.has(origin)) {
    throw new CisAuthError(
      "ORIGIN_NOT_ALLOWED",
      `${origin} is not on this computer's list of sites allowed to use the smartcard. If it should be, ask your IT team to add it to cisbridge's allowed_origins.`,
      { origin },
    );
  }
}
