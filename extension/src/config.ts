/**
 * Constants of the extension, in one place.  Frozen: nothing changes them at
 * run time.  Values an administrator may change come from managed storage
 * (see `background/policy.ts`), never from here.
 */
export const CONFIG = Object.freeze({
  /** Native messaging host name (CONTRACT §2). */
  HOST_NAME: "org.cisbridge.host",
  /** The wire protocol this extension speaks. */
  PROTOCOL: 1,
  /** How long the host may take to send its `ready` frame after starting. */
  HOST_READY_TIMEOUT_MS: 15_000,
  /** How long a request waits for a fresh read of enterprise policy before the
   *  last-read policy stands in (Chromium's first read takes ~2 s after start). */
  POLICY_FRESH_WAIT_MS: 150,
  /** When managed storage reads empty, read it again after these delays: before
   *  Chromium's policy service is ready (browser start, VDI logins) it answers
   *  {} and may send no change event when the policy then arrives. */
  POLICY_EMPTY_REREAD_MS: Object.freeze([5_000, 30_000]) as readonly number[],
  /** Default time a person has to answer a prompt window (policy: promptTimeoutSeconds). */
  PROMPT_TIMEOUT_MS: 120_000,
  /** Bounds on the policy value, so a typo cannot make prompts vanish or linger for days. */
  PROMPT_TIMEOUT_MIN_MS: 10_000,
  PROMPT_TIMEOUT_MAX_MS: 30 * 60_000,
  /** Requests one frame may have in flight before further ones get BUSY. */
  MAX_OUTSTANDING_PER_FRAME: 32,
  /** Largest request a page may hand over, as JSON characters (the host's own limit is 4 MiB). */
  MAX_REQUEST_CHARS: 8 * 1024 * 1024,
  /** Interval of the keep-alive ping while requests or prompts are open (below the 30 s idle limit). */
  KEEPALIVE_INTERVAL_MS: 20_000,
  /** Namespace of every window message between the page script and the content script. */
  PAGE_NAMESPACE: "org.cisbridge.page.v1",
  /** Name of the content script's runtime port. */
  PORT_NAME: "cisbridge.page",
  /** The prompt window's size. */
  PROMPT_WIDTH: 440,
  PROMPT_HEIGHT: 480,
});
