/**
 * `window.cisAuth`, in the page's own (MAIN) world, before any page script
 * runs.  It holds no secrets and decides nothing: it posts requests to the
 * extension's content script on the page's own window and turns the answers
 * back into Promises, CisAuthErrors and events.  Everything that matters is
 * decided in the background, by the frame's origin as the browser reports it.
 */
import { CONFIG } from "../config";
import { CisAuthError, fromWireError, isPlainObject, type PageMethod } from "../protocol";

(() => {
  if (Object.prototype.hasOwnProperty.call(window, "cisAuth")) return;

  const NS = CONFIG.PAGE_NAMESPACE;
  // Taken now, before page scripts can replace them.
  const post = window.postMessage.bind(window);
  const setTimer = window.setTimeout.bind(window);
  const clearTimer = window.clearTimeout.bind(window);
  const PAGE_EVENTS: ReadonlySet<string> = new Set(["cardinserted", "cardremoved", "sessionended"]);
  /** The content script acknowledges every request at once; silence means it is not there. */
  const ACK_TIMEOUT_MS = 5_000;

  interface Waiting {
    resolve(value: unknown): void;
    reject(error: CisAuthError): void;
    ackTimer: number | undefined;
  }
  const waiting = new Map<number, Waiting>();
  let nextId = 1;
  let subscribed = false;

  const unavailable = (): CisAuthError =>
    new CisAuthError(
      "EXTENSION_UNAVAILABLE",
      "The cisbridge browser extension is not responding. Reload the page; if that does not help, check that the extension is installed and enabled.",
    );

  function call(method: PageMethod, params: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      const ackTimer = setTimer(() => {
        if (waiting.delete(id)) reject(unavailable());
      }, ACK_TIMEOUT_MS);
      waiting.set(id, { resolve, reject, ackTimer });
      post({ ns: NS, dir: "request", id, method, params }, "/");
    });
  }

  function subscribe(): void {
    if (subscribed) return;
    subscribed = true;
    post({ ns: NS, dir: "subscribe" }, "/");
  }

  class CisAuth extends EventTarget {
    getTicket(options?: Record<string, unknown>): Promise<string> {
      void options; // reserved for later protocol versions
      return call("getTicket", {}) as Promise<string>;
    }
    getTicketNoAuth(): Promise<string | null> {
      return call("getTicketNoAuth", {}) as Promise<string | null>;
    }
    getCertificate(): Promise<unknown> {
      return call("getCertificate", {});
    }
    sign(request: Record<string, unknown>): Promise<unknown> {
      return call("sign", request);
    }
    getStatus(): Promise<unknown> {
      return call("getStatus", {});
    }
    override addEventListener(
      type: string,
      listener: EventListenerOrEventListenerObject | null,
      options?: AddEventListenerOptions | boolean,
    ): void {
      if (PAGE_EVENTS.has(type)) subscribe();
      super.addEventListener(type, listener, options);
    }
  }

  const cisAuth = new CisAuth();

  window.addEventListener("message", (event: MessageEvent) => {
    if (event.source !== window) return;
    const data: unknown = event.data;
    if (!isPlainObject(data) || data.ns !== NS) return;
    if (data.dir === "ack" && typeof data.id === "number") {
      const entry = waiting.get(data.id);
      if (entry && entry.ackTimer !== undefined) {
        clearTimer(entry.ackTimer);
        entry.ackTimer = undefined;
      }
      return;
    }
    if (data.dir === "response" && typeof data.id === "number") {
      const entry = waiting.get(data.id);
      if (!entry) return;
      waiting.delete(data.id);
      if (entry.ackTimer !== undefined) clearTimer(entry.ackTimer);
      if ("error" in data) {
        entry.reject(fromWireError(data.error) ?? new CisAuthError("INTERNAL", "The cisbridge extension sent an answer this page cannot read."));
      } else {
        entry.resolve(data.result);
      }
      return;
    }
    if (data.dir === "event" && typeof data.event === "string" && PAGE_EVENTS.has(data.event)) {
      cisAuth.dispatchEvent(new CustomEvent(data.event, { detail: data.detail }));
    }
  });

  Object.freeze(CisAuth.prototype);
  Object.freeze(cisAuth);
  Object.defineProperty(window, "cisAuth", { value: cisAuth, writable: false, configurable: false, enumerable: true });
  window.dispatchEvent(new Event("cisauth:ready"));
})();
