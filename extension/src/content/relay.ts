/**
 * The content script (isolated world): relays between the page script, over
 * window messages on the page's own window, and the background, over one
 * runtime port.  It checks only the shape of what the page sends; the origin
 * the background judges by comes from the browser, not from here or the page.
 */
import { CONFIG } from "../config";
import { judgePageMessage, type BackgroundToContent, type ContentToPage } from "../messages";
import { CisAuthError, type WireError } from "../protocol";

(() => {
  const NS = CONFIG.PAGE_NAMESPACE;
  let port: chrome.runtime.Port | null = null;
  let subscribed = false;
  const open = new Set<number>();

  /** Replies go only to this frame's own window and origin ("/" = the sender's origin). */
  function toPage(message: ContentToPage | { ns: typeof NS; dir: "ack"; id: number }): void {
    window.postMessage(message, "/");
  }

  function failPage(id: number, error: WireError): void {
    open.delete(id);
    toPage({ ns: NS, dir: "response", id, error });
  }

  function connect(): chrome.runtime.Port | null {
    if (port) return port;
    try {
      port = chrome.runtime.connect({ name: CONFIG.PORT_NAME });
    } catch {
      return null; // the extension was updated or removed under this page
    }
    port.onMessage.addListener((message: BackgroundToContent) => {
      if (message.type === "response") {
        if (!open.delete(message.id)) return;
        toPage("error" in message ? { ns: NS, dir: "response", id: message.id, error: message.error } : { ns: NS, dir: "response", id: message.id, result: message.result });
      } else if (message.type === "event") {
        toPage({ ns: NS, dir: "event", event: message.event, detail: message.detail });
      }
    });
    port.onDisconnect.addListener(() => {
      port = null;
      // The background went away (restart, update): whatever was open is lost.
      const error = new CisAuthError(
        "EXTENSION_UNAVAILABLE",
        "The cisbridge extension restarted while this request was open. Try again.",
      ).toWire();
      for (const id of [...open]) failPage(id, error);
      if (subscribed) resubscribeSoon();
    });
    return port;
  }

  let resubscribeTimer: ReturnType<typeof setTimeout> | undefined;
  function resubscribeSoon(): void {
    if (resubscribeTimer !== undefined) return;
    resubscribeTimer = setTimeout(() => {
      resubscribeTimer = undefined;
      const p = connect();
      p?.postMessage({ type: "subscribe", secure: window.isSecureContext, origin: self.origin });
    }, 1_000);
  }

  window.addEventListener("message", (event: MessageEvent) => {
    if (event.source !== window) return;
    const verdict = judgePageMessage(event.data);
    switch (verdict.kind) {
      case "ignore":
        return;
      case "invalid":
        toPage({ ns: NS, dir: "ack", id: verdict.id });
        failPage(verdict.id, new CisAuthError("INVALID_REQUEST", verdict.reason).toWire());
        return;
      case "subscribe": {
        subscribed = true;
        connect()?.postMessage({ type: "subscribe", secure: window.isSecureContext, origin: self.origin });
        return;
      }
      case "request": {
        const { id, method, params } = verdict.message;
        toPage({ ns: NS, dir: "ack", id });
        if (open.has(id)) return; // a replayed id: the first one stands
        open.add(id);
        const p = connect();
        if (!p) {
          failPage(id, new CisAuthError("EXTENSION_UNAVAILABLE", "The cisbridge extension was updated or removed. Reload the page.").toWire());
          return;
        }
        try {
          p.postMessage({ type: "request", id, method, params, secure: window.isSecureContext, origin: self.origin });
        } catch {
          failPage(id, new CisAuthError("EXTENSION_UNAVAILABLE", "The cisbridge extension was updated or removed. Reload the page.").toWire());
        }
        return;
      }
    }
  });
})();
