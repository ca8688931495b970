// Type-checked only (npm run build runs tsc): the declarations in cis-auth.d.ts
// accept the examples of docs/page-api.md as a TypeScript page would write them.
import type { CisAuth, CisAuthError, CisAuthSignResult } from "../cis-auth";

export async function examples(cisAuth: CisAuth): Promise<void> {
  const ticket: string = await cisAuth.getTicket();
  const maybe: string | null = await cisAuth.getTicketNoAuth();
  const status = await cisAuth.getStatus();
  const readers: number = status.readers.length;
  const result: CisAuthSignResult = await cisAuth.sign({ algorithm: "RS256", payloads: [{ id: "rx-1", payload: "AAEC" }], description: "3 prescriptions" });
  cisAuth.addEventListener("cardremoved", (event) => void event.detail.reader);
  cisAuth.addEventListener("sessionended", (event) => void event.detail.reason);
  try {
    await cisAuth.getCertificate();
  } catch (e) {
    const error = e as CisAuthError;
    if (error.code === "PIN_INCORRECT") void error.detail?.attemptsLeft;
  }
  void [ticket, maybe, readers, result];
}
