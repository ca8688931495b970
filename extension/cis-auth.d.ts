/**
 * TypeScript declarations for `window.cisAuth`, the page API of the cisbridge
 * extension (CONTRACT §1, protocol 1).  Copy this file into your project, or
 * reference it with `/// <reference path="cis-auth.d.ts" />`.
 */

/** Every code a CisAuthError can carry; the same strings on every hop. */
export type CisAuthErrorCode =
  | "EXTENSION_UNAVAILABLE"
  | "HOST_UNAVAILABLE"
  | "VERSION_MISMATCH"
  | "ORIGIN_NOT_ALLOWED"
  | "INSECURE_CONTEXT"
  | "INVALID_REQUEST"
  | "USER_CANCELLED"
  | "TIMEOUT"
  | "BUSY"
  | "NO_READER"
  | "NO_CARD"
  | "CARD_REMOVED"
  | "PIN_INCORRECT"
  | "PIN_LOCKED"
  | "NO_CERTIFICATE"
  | "AGENT_UNAVAILABLE"
  | "AUTHENTICATION_FAILED"
  | "SIGNING_FAILED"
  | "INTERNAL";

/** What every cisAuth Promise rejects with. `message` is written for people. */
export interface CisAuthError extends Error {
  readonly name: "CisAuthError";
  readonly code: CisAuthErrorCode;
  /** For programs and support staff, e.g. `{attemptsLeft}` for PIN_INCORRECT, `{agentCode}` for Ticket API errors. */
  readonly detail?: Record<string, unknown>;
}

export interface CisAuthCertificate {
  /** base64 DER */
  certificate: string;
  subject: string;
  issuer: string;
  serialNumber: string;
  notBefore: string;
  notAfter: string;
}

export type CisAuthAlgorithm = "RS1" | "RS256";

export interface CisAuthSignRequest {
  algorithm: CisAuthAlgorithm;
  /** `payload`: base64 of the bytes to sign. */
  payloads: Array<{ id: string; payload: string }>;
  /** Shown to the person in the signing consent window. */
  description?: string;
}

export interface CisAuthSignResult {
  /** base64 DER of the signing certificate */
  certificate: string;
  signatures: Array<{ id: string; signature: string }>;
  failed_signatures: Array<{ id: string; code: CisAuthErrorCode; message: string }>;
  algorithm: CisAuthAlgorithm;
}

export interface CisAuthSession {
  active: boolean;
  uid?: string;
  roleId?: string;
  idleExpiresAt?: number;
  maxExpiresAt?: number;
}

export interface CisAuthStatus {
  /** extension version */
  extension: string;
  /** host version */
  host: string;
  protocol: number;
  /** identity agent kind: "gas", "ticketapi" or "none" */
  agent: string;
  readers: Array<{ name: string; cardPresent: boolean }>;
  cardPresent: boolean;
  session: CisAuthSession;
  /** "ok", or "unavailable: <why>" when readers cannot be listed */
  pcsc: string;
  /** label of the PKCS#11 token in use, once a card call has chosen one */
  token?: string;
  [more: string]: unknown;
}

export interface CisAuthCardEventDetail {
  reader: string;
  atr?: string | null;
}

export interface CisAuthSessionEndedDetail {
  /** "cardRemoved", "idleTimeout", "maxTimeout", "logout" or "serverEnded" */
  reason: string;
  uid?: string;
}

export interface CisAuthEventMap {
  cardinserted: CustomEvent<CisAuthCardEventDetail>;
  cardremoved: CustomEvent<CisAuthCardEventDetail>;
  sessionended: CustomEvent<CisAuthSessionEndedDetail>;
}

export interface CisAuth extends EventTarget {
  /** The SSO ticket; asks for card, passcode and role when no session is active. */
  getTicket(options?: Record<string, never>): Promise<string>;
  /** The ticket of an active session, or null; never asks the person anything. */
  getTicketNoAuth(): Promise<string | null>;
  getCertificate(): Promise<CisAuthCertificate>;
  /** Batch signing: consent first, then at most one passcode entry for the batch. */
  sign(request: CisAuthSignRequest): Promise<CisAuthSignResult>;
  /** Works without a card. */
  getStatus(): Promise<CisAuthStatus>;

  addEventListener<K extends keyof CisAuthEventMap>(
    type: K,
    listener: (this: CisAuth, event: CisAuthEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof CisAuthEventMap>(
    type: K,
    listener: (this: CisAuth, event: CisAuthEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

declare global {
  interface Window {
    /** Present (frozen) on pages where the cisbridge extension is installed; works only on allowed origins. */
    readonly cisAuth?: CisAuth;
  }
  interface WindowEventMap {
    "cisauth:ready": Event;
  }
}
