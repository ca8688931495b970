/**
 * The background's core: takes page requests from content-script ports,
 * decides by the sender's origin whether they may go on, relays them over the
 * one native port (multiplexed by id), shows the host's prompts in extension
 * windows, and hands results, errors and card events back to the right frame.
 *
 * Written against small interfaces (no `chrome.*` here) so the rules can be
 * unit-tested in node; `main.ts` wires it to the browser.
 */
import { CONFIG } from "../config";
import type { BackgroundToContent, ClientRequest, ContentToBackground, PromptView } from "../messages";
import { checkOrigin, effectiveAllowlist, isSecureOrigin, originSet, senderOrigin, type SenderFacts } from "../origins";
import {
  CisAuthError,
  PAGE_EVENT_OF,
  makeRequest,
  toWireError,
  type HostFrame,
  type PageMethod,
  type PromptKind,
  type PromptReplyParams,
  type RequestId,
} from "../protocol";
import { NativeHost, type ConnectNative } from "./native";

/** One content script's port, i.e. one frame of one tab. */
export interface Client {
  /** Unique per port. */
  readonly key: string;
  readonly tabId: number | undefined;
  /** What the browser says about the frame that opened the port. */
  readonly sender: SenderFacts;
  post(message: BackgroundToContent): void;
}

export interface Policy {
  /** Enterprise allowlist, or null when policy sets none. */
  allowedOrigins: string[] | null;
  promptTimeoutMs: number;
}

export interface BridgeDeps {
  connectNative: ConnectNative;
  extensionVersion: string;
  policy(): Promise<Policy>;
  /** Opens the prompt page for `key` in a small window; resolves to the window id. */
  openPromptWindow(key: string): Promise<number>;
  closeWindow(windowId: number): void;
  /** Keep the background alive (true) while requests or prompts are open. */
  setKeepAlive(on: boolean): void;
  randomKey(): string;
  now(): number;
  setTimeout: typeof setTimeout;
  clearTimeout: typeof clearTimeout;
  log(message: string, detail?: unknown): void;
}

interface Pending {
  nativeId: number;
  client: Client;
  pageId: number;
  method: PageMethod;
  origin: string;
  /** The page has had its answer (result, error, or a local BUSY/TIMEOUT); the host's is still due. */
  settled: boolean;
}

interface OpenPrompt {
  key: string;
  tabKey: string;
  prompt: number;
  pending: Pending;
  kind: PromptKind;
  data: Record<string, unknown>;
  deadline: number;
  timer: ReturnType<typeof setTimeout>;
  windowId: number | null;
  done: boolean;
}

interface ClientState {
  client: Client;
  subscribed: boolean;
  origin: string;
}

export class Bridge {
  private readonly host: NativeHost;
  private readonly clients = new Map<string, ClientState>();
  private readonly pending = new Map<number, Pending>();
  private readonly prompts = new Map<string, OpenPrompt>();
  private readonly promptByTab = new Map<string, OpenPrompt>();
  private nextId = 1;
  private keepAlive = false;
  private lastAllowed: ReadonlySet<string> = new Set();

  constructor(private readonly deps: BridgeDeps) {
    this.host = new NativeHost(
      deps.connectNative,
      {
        onFrame: (frame) => this.onHostFrame(frame),
        onClosed: (error) => this.onHostClosed(error),
        log: deps.log,
      },
      deps,
    );
  }

  // -------------------------------------------------------------------------
  // Content scripts

  attach(client: Client): void {
    this.clients.set(client.key, { client, subscribed: false, origin: senderOrigin(client.sender) });
  }

  /** The frame went away (closed, navigated, reloaded): cancel what it started. */
  detach(client: Client): void {
    this.clients.delete(client.key);
    for (const pending of this.pending.values()) {
      if (pending.client.key !== client.key || pending.settled) continue;
      pending.settled = true;
      this.closePromptsOf(pending);
      this.sendControl("cancel", pending.origin, { request: pending.nativeId });
    }
    this.updateKeepAlive();
  }

  onClientMessage(client: Client, message: ContentToBackground): void {
    const state = this.clients.get(client.key);
    if (!state) return;
    // The content script's own reading of its origin may only narrow what the browser says.
    state.origin = senderOrigin({ ...client.sender, contentOrigin: message.origin });
    if (message.type === "subscribe") {
      if (!state.subscribed) {
        state.subscribed = true;
        void this.connectFor(state, message.secure);
      }
      return;
    }
    state.subscribed = true;
    void this.handleRequest(state, message);
  }

  private async handleRequest(state: ClientState, request: ClientRequest): Promise<void> {
    const { client, origin } = state;
    const fail = (error: unknown): void => client.post({ type: "response", id: request.id, error: toWireError(error) });
    try {
      // Refuse what can be refused without asking the host: it learns nothing of such pages.
      if (origin === "null" || !isSecureOrigin(origin) || !request.secure) checkOrigin(origin, request.secure, new Set());
      const policy = await this.deps.policy();
      if (policy.allowedOrigins !== null) checkOrigin(origin, true, originSet(policy.allowedOrigins));
      const info = await this.host.ready();
      const allowed = effectiveAllowlist(info.allowedOrigins, policy.allowedOrigins);
      this.lastAllowed = allowed;
      checkOrigin(origin, request.secure, allowed);
      if (!this.clients.has(client.key)) return; // the frame left while we waited
      if (this.outstandingOf(client) >= CONFIG.MAX_OUTSTANDING_PER_FRAME) {
        throw new CisAuthError("BUSY", "This page has too many smartcard requests waiting. Wait for them to finish, then try again.");
      }
      const nativeId = this.nextId++;
      const pending: Pending = { nativeId, client, pageId: request.id, method: request.method, origin, settled: false };
      this.pending.set(nativeId, pending);
      this.updateKeepAlive();
      try {
        this.host.send(makeRequest(nativeId, request.method, origin, request.params));
      } catch (error) {
        this.pending.delete(nativeId);
        this.updateKeepAlive();
        throw error;
      }
    } catch (error) {
      fail(error);
    }
    // The answer arrives through onHostFrame.
  }

  /**
   * A page that only listens for card events still needs the host running to
   * hear them: connect when its origin could be allowed.  Failures are left
   * for its first request to report.
   */
  private async connectFor(state: ClientState, secure: boolean): Promise<void> {
    try {
      if (state.origin === "null" || !isSecureOrigin(state.origin) || !secure) return;
      const policy = await this.deps.policy();
      if (policy.allowedOrigins !== null && !originSet(policy.allowedOrigins).has(state.origin)) return;
      const info = await this.host.ready();
      this.lastAllowed = effectiveAllowlist(info.allowedOrigins, policy.allowedOrigins);
    } catch {
      // reported to the page on its first request
    }
  }

  private outstandingOf(client: Client): number {
    let count = 0;
    for (const pending of this.pending.values()) if (pending.client.key === client.key && !pending.settled) count++;
    return count;
  }

  // -------------------------------------------------------------------------
  // Host frames

  private onHostFrame(frame: HostFrame): void {
    switch (frame.type) {
      case "result":
      case "error":
        this.onResponse(frame);
        return;
      case "prompt":
        void this.onPrompt(frame.prompt, frame.for, frame.kind, frame.data);
        return;
      case "event":
        this.onEvent(frame.event, frame.data);
        return;
    }
  }

  private onResponse(frame: Extract<HostFrame, { type: "result" | "error" }>): void {
    if (frame.id === null || typeof frame.id !== "number") {
      if (frame.type === "error") this.deps.log(`host refused a frame: ${frame.error.code}`);
      return;
    }
    const pending = this.pending.get(frame.id);
    if (!pending) {
      // Answers to promptReply / cancel, or to requests abandoned by a host restart.
      if (frame.type === "error") this.deps.log(`host: ${frame.error.code} for control request ${frame.id}`);
      return;
    }
    this.pending.delete(frame.id);
    this.closePromptsOf(pending);
    if (!pending.settled) {
      pending.settled = true;
      if (frame.type === "result") {
        pending.client.post({ type: "response", id: pending.pageId, result: this.pageResult(pending.method, frame.result) });
      } else {
        pending.client.post({ type: "response", id: pending.pageId, error: frame.error });
      }
    }
    this.updateKeepAlive();
  }

  /** Wire results -> what the page's Promise resolves to (CONTRACT §1). */
  private pageResult(method: PageMethod, result: Record<string, unknown>): unknown {
    switch (method) {
      case "getTicket":
        return typeof result.ticket === "string" ? result.ticket : null;
      case "getTicketNoAuth":
        return typeof result.ticket === "string" ? result.ticket : null;
      case "getStatus":
        return { extension: this.deps.extensionVersion, ...result };
      default:
        return result;
    }
  }

  private onEvent(event: string, data: Record<string, unknown>): void {
    if (event === "ready") {
      const info = this.host.info;
      if (info) void this.deps.policy().then((policy) => (this.lastAllowed = effectiveAllowlist(info.allowedOrigins, policy.allowedOrigins)));
      return;
    }
    const pageEvent = PAGE_EVENT_OF[event as keyof typeof PAGE_EVENT_OF];
    if (!pageEvent) return;
    for (const state of this.clients.values()) {
      if (state.subscribed && this.lastAllowed.has(state.origin)) {
        state.client.post({ type: "event", event: pageEvent, detail: data });
      }
    }
  }

  private onHostClosed(error: CisAuthError): void {
    this.deps.log("native host closed", error.message);
    const wire = error.toWire();
    for (const pending of this.pending.values()) {
      this.closePromptsOf(pending);
      if (!pending.settled) pending.client.post({ type: "response", id: pending.pageId, error: wire });
    }
    this.pending.clear();
    this.updateKeepAlive();
  }

  // -------------------------------------------------------------------------
  // Prompts

  private async onPrompt(prompt: number, forId: RequestId, kind: PromptKind, data: Record<string, unknown>): Promise<void> {
    const pending = typeof forId === "number" ? this.pending.get(forId) : undefined;
    if (!pending || pending.settled) {
      // Nobody is waiting for this request any more.
      this.sendPromptReply(pending?.origin ?? "null", { prompt, cancel: true });
      return;
    }
    const tabKey = pending.client.tabId !== undefined ? `tab:${pending.client.tabId}` : `client:${pending.client.key}`;
    if (this.promptByTab.has(tabKey)) {
      // One prompt window per tab: a page cannot stack windows by firing requests.
      this.settle(pending, new CisAuthError("BUSY", "A cisbridge window is already open for this page. Finish or close it, then try again."));
      this.sendPromptReply(pending.origin, { prompt, cancel: true });
      return;
    }
    const policy = await this.deps.policy();
    const timeout = policy.promptTimeoutMs;
    const open: OpenPrompt = {
      key: this.deps.randomKey(),
      tabKey,
      prompt,
      pending,
      kind,
      data,
      deadline: this.deps.now() + timeout,
      timer: this.deps.setTimeout(() => this.onPromptTimeout(open), timeout),
      windowId: null,
      done: false,
    };
    this.prompts.set(open.key, open);
    this.promptByTab.set(tabKey, open);
    this.updateKeepAlive();
    try {
      const windowId = await this.deps.openPromptWindow(open.key);
      if (open.done) this.deps.closeWindow(windowId);
      else open.windowId = windowId;
    } catch (error) {
      this.deps.log("could not open the prompt window", String(error));
      if (!open.done) {
        this.finishPrompt(open);
        this.settle(pending, new CisAuthError("INTERNAL", "cisbridge could not open its window to ask you. Allow pop-up windows for the extension and try again."));
        this.sendPromptReply(pending.origin, { prompt, cancel: true });
      }
    }
  }

  /** What the prompt page shows; null when the key is unknown or spent. */
  promptView(key: string): PromptView | null {
    const open = this.prompts.get(key);
    if (!open || open.done) return null;
    return { kind: open.kind, origin: open.pending.origin, data: open.data, deadline: open.deadline };
  }

  /** The person answered in the prompt window. */
  answerPrompt(key: string, value: string | boolean): boolean {
    const open = this.prompts.get(key);
    if (!open || open.done) return false;
    this.finishPrompt(open);
    this.sendPromptReply(open.pending.origin, { prompt: open.prompt, value });
    return true;
  }

  /** The person pressed Cancel (or Escape) in the prompt window. */
  cancelPrompt(key: string): boolean {
    const open = this.prompts.get(key);
    if (!open || open.done) return false;
    this.finishPrompt(open);
    this.sendPromptReply(open.pending.origin, { prompt: open.prompt, cancel: true });
    return true;
  }

  /** A browser window closed; if it held a prompt, that is a cancel. */
  onWindowClosed(windowId: number): void {
    for (const open of this.prompts.values()) {
      if (open.windowId === windowId && !open.done) {
        open.windowId = null; // already gone: do not close it again
        this.cancelPrompt(open.key);
      }
    }
  }

  private onPromptTimeout(open: OpenPrompt): void {
    if (open.done) return;
    this.finishPrompt(open);
    this.settle(open.pending, new CisAuthError("TIMEOUT", "Nobody answered the cisbridge window in time, so the request was stopped. Try again when you are ready."));
    this.sendPromptReply(open.pending.origin, { prompt: open.prompt, cancel: true });
  }

  private finishPrompt(open: OpenPrompt): void {
    open.done = true;
    this.deps.clearTimeout(open.timer);
    this.prompts.delete(open.key);
    if (this.promptByTab.get(open.tabKey) === open) this.promptByTab.delete(open.tabKey);
    if (open.windowId !== null) {
      this.deps.closeWindow(open.windowId);
      open.windowId = null;
    }
    this.updateKeepAlive();
  }

  private closePromptsOf(pending: Pending): void {
    for (const open of [...this.prompts.values()]) if (open.pending === pending) this.finishPrompt(open);
  }

  // -------------------------------------------------------------------------

  /** Answer the page now; the host's own answer, when it comes, is dropped. */
  private settle(pending: Pending, error: CisAuthError): void {
    if (pending.settled) return;
    pending.settled = true;
    pending.client.post({ type: "response", id: pending.pageId, error: error.toWire() });
  }

  private sendPromptReply(origin: string, params: PromptReplyParams): void {
    this.sendControl("promptReply", origin, params as unknown as Record<string, unknown>);
  }

  private sendControl(method: "promptReply" | "cancel", origin: string, params: Record<string, unknown>): void {
    try {
      this.host.send(makeRequest(this.nextId++, method, origin, params));
    } catch {
      // The host is gone: everything it had open has ended with it.
    }
  }

  private updateKeepAlive(): void {
    const on = this.prompts.size > 0 || [...this.pending.values()].some((p) => !p.settled);
    if (on !== this.keepAlive) {
      this.keepAlive = on;
      this.deps.setKeepAlive(on);
    }
  }

  /** For tests and diagnostics. */
  get openPromptCount(): number {
    return this.prompts.size;
  }
}
