/**
 * The prompt window: an extension page, never the web page.  Asks the
 * background what to show (by an unguessable key in its URL), shows it as
 * text, and sends back the answer or a cancel.  Closing the window is a
 * cancel too (the background watches windows.onRemoved).
 */
import type { PromptView } from "../messages";
import { formatRemaining, promptModel, roleLabel, roleShortName, type PromptModel } from "./model";

const t = (name: string, ...subs: string[]): string => chrome.i18n.getMessage(name, subs) || name;
const $ = <T extends HTMLElement>(id: string): T => {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element as T;
};

const key = new URLSearchParams(location.search).get("key") ?? "";
let finished = false;

function send(message: object): Promise<unknown> {
  return chrome.runtime.sendMessage(message).catch(() => null);
}

async function answer(value: string | boolean): Promise<void> {
  if (finished) return;
  finished = true;
  await send({ type: "prompt:answer", key, value });
  window.close();
}

async function cancel(): Promise<void> {
  if (finished) return;
  finished = true;
  await send({ type: "prompt:cancel", key });
  window.close();
}

function showMessage(name: string): void {
  for (const form of document.querySelectorAll<HTMLElement>(".kind")) form.hidden = true;
  const message = $("message");
  message.textContent = t(name);
  message.hidden = false;
  $("title").textContent = t("windowTitle");
}

function showPin(model: Extract<PromptModel, { kind: "pin" }>): void {
  $("title").textContent = t("pinTitle");
  const form = $<HTMLFormElement>("pin");
  const input = $<HTMLInputElement>("pin-input");
  const attempts = $("pin-attempts");
  const warnings: string[] = [];
  if (model.retry) warnings.push(t("pinRetry"));
  if (model.attemptsLeft !== null) {
    warnings.push(model.attemptsLeft === 1 ? t("pinLastAttempt") : t("pinAttemptsLeft", String(model.attemptsLeft)));
  }
  if (warnings.length > 0) {
    attempts.textContent = warnings.join(" ");
    attempts.hidden = false;
  }
  if (model.protectedPath) {
    // The reader collects the passcode itself: nothing is typed here.
    $("pin-entry").hidden = true;
    $("pin-pad").hidden = false;
    $("pin-submit").textContent = t("continueButton");
  }
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = model.protectedPath ? "" : input.value;
    input.value = ""; // cleared at once: it lives on only in the message to the host
    void answer(value);
  });
  (model.protectedPath ? $("pin-submit") : input).focus();
}

function showRole(model: Extract<PromptModel, { kind: "role" }>): void {
  $("title").textContent = t("roleTitle");
  const form = $<HTMLFormElement>("role");
  const list = $("role-list");
  model.roles.forEach((role, index) => {
    const label = document.createElement("label");
    label.className = "role-option";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "role";
    radio.value = role.id;
    radio.checked = index === 0;
    label.append(radio, " ", roleLabel(role));
    if (roleShortName(role.name) !== role.name) {
      const path = document.createElement("span");
      path.className = "role-path";
      path.textContent = role.name.replace(/"/g, "").replace(/:/g, " › ");
      label.append(path);
    }
    list.append(label);
  });
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = form.querySelector<HTMLInputElement>('input[name="role"]:checked');
    if (chosen) void answer(chosen.value);
  });
  form.querySelector<HTMLInputElement>('input[name="role"]')?.focus();
}

function showConsent(model: Extract<PromptModel, { kind: "consent" }>): void {
  $("title").textContent = t("consentTitle");
  $("consent-description").textContent = model.description || t("consentNoDescription");
  $("consent-count").textContent = String(model.count);
  $("consent-algorithm").textContent = model.algorithm === "RS256" ? "RSA with SHA-256 (RS256)" : "RSA with SHA-1 (RS1)";
  const form = $<HTMLFormElement>("consent");
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void answer(true);
  });
  // Cancel has the focus, so an Enter pressed by habit does not sign.
  form.querySelector<HTMLButtonElement>("button.cancel")?.focus();
}

function startCountdown(deadline: number): void {
  const line = $("time-left");
  const tick = (): void => {
    const left = deadline - Date.now();
    line.textContent = t("timeLeft", formatRemaining(left));
    if (left <= 0) window.close();
  };
  tick();
  setInterval(tick, 1000);
}

async function main(): Promise<void> {
  document.title = t("windowTitle");
  for (const element of document.querySelectorAll<HTMLElement>("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n ?? "");
  }
  for (const button of document.querySelectorAll<HTMLButtonElement>("button.cancel")) {
    button.addEventListener("click", () => void cancel());
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      void cancel();
    }
  });

  const view = (await send({ type: "prompt:get", key })) as PromptView | null;
  if (!view) {
    finished = true;
    showMessage("promptGone");
    return;
  }
  $("origin").textContent = view.origin;
  const model = promptModel(view);
  if (!model) {
    showMessage("promptInvalid");
    await cancel();
    return;
  }
  startCountdown(view.deadline);
  if (model.kind === "pin") showPin(model);
  else if (model.kind === "role") showRole(model);
  else showConsent(model);
}

void main();
