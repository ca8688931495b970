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

/** A remembered Policy, checked as carefully as a fresh one; null if unusable. */
export function rememberedPolicy(stored: unknown): Policy | null {
  if (!stored || typeof stored !== "object") return null;
  const { allowedOrigins, promptTimeoutMs } = stored as Record<string, unknown>;
  const origins = allowedOrigins === null ? null : Array.isArray(allowedOrigins) ? allowedOrigins : undefined;
  if (origins === undefined || (origins && !origins.every((o) => typeof o === "string"))) return null;
  if (typeof promptTimeoutMs !== "number" || !Number.isFinite(promptTimeoutMs)) return null;
  return parsePolicy({ allowedOrigins: origins ?? undefined, promptTimeoutSeconds: promptTimeoutMs / 1000 });
}

/** Where the policy is read from and remembered: chrome.storage in the worker, fakes in tests. */
export interface PolicyStore {
  readManaged(): Promise<Record<string, unknown>>;
  readRemembered(): Promise<Policy | null>;
  remember(policy: Policy): Promise<void>;
  setTimeout(fn: () => void, ms: number): unknown;
}

/**
 * The current policy, read once and re-read after managed storage changes.
 *
 * Chromium answers its first managed-storage read only ~2 s after the browser
 * starts, and every request waits for the policy (it may narrow the host's
 * allowlist).  So: the fresh read is used when it comes within
 * CONFIG.POLICY_FRESH_WAIT_MS; otherwise the policy last read (remembered in
 * the extension's local storage, which pages cannot reach) stands in until
 * the fresh one arrives.  With nothing remembered (first run), requests wait.
 *
 * Before its policy service is ready Chromium may also answer {} (seen on
 * force-installs and VDI logins; w3c/webextensions#547) without a change
 * event later.  So an empty read is read again after each of
 * CONFIG.POLICY_EMPTY_REREAD_MS, and a policy found then applies at once.
 */
export function policySource(store: PolicyStore): { current(): Promise<Policy>; forget(): void } {
  let cached: Promise<Policy> | null = null;
  let generation = 0; // forget() starts a new one; re-reads of an old one stop
  const read = (): Promise<{ policy: Policy; empty: boolean }> =>
    store
      .readManaged()
      .then((raw) => ({ policy: parsePolicy(raw), empty: !raw || Object.keys(raw).length === 0 }))
      // Firefox rejects when no policy names the extension: that means "no policy".
      .catch(() => ({ policy: parsePolicy({}), empty: true }));
  const rereadWhileEmpty = (gen: number, delays: readonly number[]): void => {
    const [delay, ...later] = delays;
    if (delay === undefined) return;
    store.setTimeout(() => {
      if (gen !== generation) return;
      void read().then(({ policy, empty }) => {
        if (gen !== generation) return;
        if (empty) return rereadWhileEmpty(gen, later);
        cached = Promise.resolve(policy);
        return store.remember(policy);
      }).catch(() => undefined);
    }, delay);
  };
  const current = (): Promise<Policy> => {
    if (cached) return cached;
    const gen = generation;
    const first = read();
    const fresh = first.then(({ policy }) => policy);
    const standIn = new Promise<Policy>((resolve) => {
      store.setTimeout(() => {
        store.readRemembered().then((remembered) => {
          if (remembered) resolve(remembered);
        }, () => undefined);
      }, CONFIG.POLICY_FRESH_WAIT_MS);
    });
    const mine = Promise.race([fresh, standIn]);
    cached = mine;
    void first.then(({ policy, empty }) => {
      if (cached === mine) cached = Promise.resolve(policy);
      if (empty) rereadWhileEmpty(gen, CONFIG.POLICY_EMPTY_REREAD_MS);
      return store.remember(policy);
    }).catch(() => undefined);
    return mine;
  };
  return {
    current,
    forget: () => {
      generation += 1;
      cached = null;
    },
  };
}

const REMEMBERED = "cisbridge.policy";

const source = policySource({
  readManaged: () => chrome.storage.managed.get(null) as Promise<Record<string, unknown>>,
  async readRemembered() {
    return rememberedPolicy((await chrome.storage.local.get(REMEMBERED))[REMEMBERED]);
  },
  remember: (policy) => chrome.storage.local.set({ [REMEMBERED]: policy }),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
});

export function currentPolicy(): Promise<Policy> {
  return source.current();
}

export function watchPolicy(): void {
  chrome.storage.onChanged.addListener((_changes, area) => {
    if (area === "managed") source.forget();
  });
}
