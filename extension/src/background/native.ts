/**
 * The one native messaging port to the cisbridge host: connects on first use,
 * waits for the host's `ready` frame, checks the protocol, and reports when
 * the host goes away so the next request connects afresh.
 */
import { CONFIG } from "../config";
import { CisAuthError, checkReady, classifyHostFrame, hostUnavailable, type HostFrame, type NativeRequest, type ReadyData } from "../protocol";

export interface NativePortLike {
  postMessage(message: unknown): void;
  disconnect(): void;
}

/** Opens the port; `onDisconnect` gets the browser's error text, if any. */
export type ConnectNative = (
  onMessage: (message: unknown) => void,
  onDisconnect: (browserMessage: string | undefined) => void,
) => NativePortLike;

export interface NativeHostEvents {
  /** Every frame after `ready` (responses, prompts, events, later `ready`s). */
  onFrame(frame: HostFrame): void;
  /** The port closed (host exited, or never started) after it was ready. */
  onClosed(error: CisAuthError): void;
  log(message: string, detail?: unknown): void;
}

interface Connection {
  port: NativePortLike;
  ready: Promise<ReadyData>;
  info: ReadyData | null;
  closed: boolean;
}

export class NativeHost {
  private connection: Connection | null = null;

  constructor(
    private readonly connectNative: ConnectNative,
    private readonly events: NativeHostEvents,
    private readonly timers: { setTimeout: typeof setTimeout; clearTimeout: typeof clearTimeout } = globalThis,
  ) {}

  /** The host's ready data, connecting first when there is no live port. */
  ready(): Promise<ReadyData> {
    if (!this.connection || this.connection.closed) this.connection = this.connect();
    const connection = this.connection;
    // The latest `ready` of this connection: a host may announce a new allowlist.
    return connection.ready.then((first) => connection.info ?? first);
  }

  /** What the live host last said in `ready`, or null when none is connected. */
  get info(): ReadyData | null {
    return this.connection && !this.connection.closed ? this.connection.info : null;
  }

  send(request: NativeRequest): void {
    const connection = this.connection;
    if (!connection || connection.closed || !connection.info) {
      throw hostUnavailable("the host is not connected");
    }
    connection.port.postMessage(request);
  }

  disconnect(): void {
    const connection = this.connection;
    if (connection && !connection.closed) {
      connection.closed = true;
      connection.port.disconnect();
    }
    this.connection = null;
  }

  private connect(): Connection {
    let resolveReady!: (info: ReadyData) => void;
    let rejectReady!: (error: CisAuthError) => void;
    const ready = new Promise<ReadyData>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    // Nobody may be waiting when a late failure rejects: keep it from being "unhandled".
    ready.catch(() => undefined);

    const connection: Connection = { port: undefined as unknown as NativePortLike, ready, info: null, closed: false };
    const timer = this.timers.setTimeout(() => {
      fail(hostUnavailable("the host did not say it was ready in time"));
    }, CONFIG.HOST_READY_TIMEOUT_MS);

    const fail = (error: CisAuthError): void => {
      this.timers.clearTimeout(timer);
      if (connection.closed) return;
      connection.closed = true;
      try {
        connection.port?.disconnect();
      } catch {
        // already gone
      }
      if (connection.info) this.events.onClosed(error);
      else rejectReady(error);
    };

    const onMessage = (message: unknown): void => {
      if (connection.closed) return;
      const frame = classifyHostFrame(message);
      if (!frame) {
        this.events.log("dropped a frame the extension does not understand");
        return;
      }
      if (!connection.info) {
        if (frame.type !== "event" || frame.event !== "ready") {
          fail(new CisAuthError("VERSION_MISMATCH", "The cisbridge host did not introduce itself as protocol 1 expects; it is probably too old for this extension. Update the cisbridge host."));
          return;
        }
        try {
          connection.info = checkReady(frame.data);
        } catch (error) {
          fail(error instanceof CisAuthError ? error : hostUnavailable(String(error)));
          return;
        }
        this.timers.clearTimeout(timer);
        resolveReady(connection.info);
        return;
      }
      if (frame.type === "event" && frame.event === "ready") {
        try {
          connection.info = checkReady(frame.data);
        } catch (error) {
          fail(error instanceof CisAuthError ? error : hostUnavailable(String(error)));
          return;
        }
      }
      this.events.onFrame(frame);
    };

    const onDisconnect = (browserMessage: string | undefined): void => {
      if (this.connection === connection) this.connection = null;
      fail(hostUnavailable(browserMessage ?? "Native host has exited."));
    };

    try {
      connection.port = this.connectNative(onMessage, onDisconnect);
    } catch (error) {
      // Some browsers throw at once instead of disconnecting.
      fail(hostUnavailable(error instanceof Error ? error.message : String(error)));
    }
    return connection;
  }
}
