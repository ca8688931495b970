/**
 * Enterprise policy from managed storage (schema: `managed_schema.json`;
 * Chromium: the ExtensionSettings / 3rdparty policy; Firefox: policies.json
 * `3rdparty.Extensions["cisbridge@cisbridge.org"]`).
 */
import { CONFIG } from "../config";
import type { Policy } from "./bridge";

/** Turns raw managed storage into a Policy; bad values fall back to the defaults. */
export function parsePolicy(raw: Record<string, unknown>): Policy {
  const origins = raw.allowedOrigins;
  const allowedOrigins = Array.isArray(origins) ? origins.filter((o): o is string => typeof o === "string") : null;
  let promptTimeoutMs: number = CONFIG.PROMPT_TIMEOUT_MS;
  const seconds = raw.promptTimeoutSeconds;
  if (typeof seconds === "number" && Number.isFinite(seconds)) {
    promptTimeoutMs = Math.min(CONFIG.PROMPT_TIMEOUT_MAX_MS, Math.max(CONFIG.PROMPT_TIMEOUT_MIN_MS, Math.round(seconds * 1000)));
  }
  return { allowedOrigins, promptTimeoutMs };
}

let cached: Promise<Policy> | null = null;

/** The current policy, read once and re-read after managed storage changes. */
export function currentPolicy(): Promise<Policy> {
  if (!cached) {
    cached = chrome.storage.managed
      .get(null)
      .then((raw) => parsePolicy(raw as Record<string, unknown>))
      // Firefox rejects when no policy names the extension: that means "no policy".
      .catch(() => parsePolicy({}));
  }
  return cached;
}

export function watchPolicy(): void {
  chrome.storage.onChanged.addListener((_changes, area) => {
    if (area === "managed") cached = null;
  });
}
