/**
 * Wires the Bridge to the browser: content-script ports, the native port,
 * prompt windows, managed policy and keep-alive.  Runs as the Chromium
 * service worker and as Firefox's background script.
 */
import { CONFIG } from "../config";
import { judgeClientMessage, judgePromptPageMessage } from "../messages";
import { Bridge, type Client } from "./bridge";
import { currentPolicy, watchPolicy } from "./policy";

const PROMPT_PAGE = chrome.runtime.getURL("prompt.html");
let keepAliveTimer: ReturnType<typeof setInterval> | undefined;

function randomKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const bridge = new Bridge({
  connectNative(onMessage, onDisconnect) {
    const port = chrome.runtime.connectNative(CONFIG.HOST_NAME);
    port.onMessage.addListener((message: unknown) => onMessage(message));
    port.onDisconnect.addListener((p: chrome.runtime.Port & { error?: { message?: string } }) => {
      // Chromium reports through runtime.lastError, Firefox through port.error.
      const message = chrome.runtime.lastError?.message ?? p.error?.message;
      onDisconnect(message);
    });
    return port;
  },
  extensionVersion: chrome.runtime.getManifest().version,
  policy: currentPolicy,
  async openPromptWindow(key) {
    const created = await chrome.windows.create({
      url: `${PROMPT_PAGE}?key=${encodeURIComponent(key)}`,
      type: "popup",
      width: CONFIG.PROMPT_WIDTH,
      height: CONFIG.PROMPT_HEIGHT,
      focused: true,
    });
    if (created?.id === undefined) throw new Error("the browser gave no window id");
    return created.id;
  },
  closeWindow(windowId) {
    chrome.windows.remove(windowId).catch(() => undefined);
  },
  setKeepAlive(on) {
    // An extension API call every 20 s resets the service worker's idle timer.
    if (on && keepAliveTimer === undefined) {
      keepAliveTimer = setInterval(() => void chrome.runtime.getPlatformInfo(), CONFIG.KEEPALIVE_INTERVAL_MS);
    } else if (!on && keepAliveTimer !== undefined) {
      clearInterval(keepAliveTimer);
      keepAliveTimer = undefined;
    }
  },
  randomKey,
  now: () => Date.now(),
  setTimeout: globalThis.setTimeout.bind(globalThis),
  clearTimeout: globalThis.clearTimeout.bind(globalThis),
  log(message, detail) {
    if (detail === undefined) console.info(`cisbridge: ${message}`);
    else console.info(`cisbridge: ${message}`, detail);
  },
});

watchPolicy();
void currentPolicy(); // read policy as the worker starts: the first read is slow in Chromium

let nextClient = 1;
chrome.runtime.onConnect.addListener((port) => {
  const sender = port.sender;
  // Only our content scripts, in web pages: never extension pages or other extensions.
  if (port.name !== CONFIG.PORT_NAME || !sender || sender.id !== chrome.runtime.id || !sender.tab || sender.url?.startsWith(chrome.runtime.getURL(""))) {
    port.disconnect();
    return;
  }
  const client: Client = {
    key: `c${nextClient++}`,
    tabId: sender.tab.id,
    sender: { origin: (sender as { origin?: string }).origin, url: sender.url },
    post(message) {
      try {
        port.postMessage(message);
      } catch {
        // the frame is gone; detach follows
      }
    },
  };
  bridge.attach(client);
  port.onMessage.addListener((raw: unknown) => {
    const message = judgeClientMessage(raw);
    if (message) bridge.onClientMessage(client, message);
  });
  port.onDisconnect.addListener(() => bridge.detach(client));
});

chrome.runtime.onMessage.addListener((raw: unknown, sender, sendResponse) => {
  // Prompt windows only: an extension page of ours, not a content script.
  if (sender.id !== chrome.runtime.id || !sender.url?.startsWith(PROMPT_PAGE)) return false;
  const message = judgePromptPageMessage(raw);
  if (!message) return false;
  switch (message.type) {
    case "prompt:get":
      sendResponse(bridge.promptView(message.key));
      break;
    case "prompt:answer":
      sendResponse(bridge.answerPrompt(message.key, message.value));
      break;
    case "prompt:cancel":
      sendResponse(bridge.cancelPrompt(message.key));
      break;
  }
  return false;
});

chrome.windows.onRemoved.addListener((windowId) => bridge.onWindowClosed(windowId));
