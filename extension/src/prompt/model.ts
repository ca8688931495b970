/**
 * What a prompt window shows, checked and typed.  The host's prompt data is
 * validated here (it carries page-supplied text such as a signing
 * description), and everything is later put on screen as text, never HTML.
 */
import type { PromptView } from "../messages";
import type { Role } from "../protocol";

export type PromptModel =
  | { kind: "pin"; origin: string; protectedPath: boolean; attemptsLeft: number | null; retry: boolean }
  | { kind: "role"; origin: string; roles: Role[] }
  | { kind: "consent"; origin: string; description: string; count: number; algorithm: "RS1" | "RS256" };

/** Longest description shown; the rest is cut with an ellipsis so the buttons stay in view. */
export const MAX_DESCRIPTION = 500;

export function promptModel(view: PromptView): PromptModel | null {
  const { data, origin } = view;
  switch (view.kind) {
    case "pin": {
      const left = data.attemptsLeft;
      const attemptsLeft = typeof left === "number" && Number.isSafeInteger(left) && left >= 0 ? left : null;
      return { kind: "pin", origin, protectedPath: data.protectedPath === true, attemptsLeft, retry: data.retry === true };
    }
    case "role": {
      if (!Array.isArray(data.roles) || data.roles.length === 0) return null;
      const roles: Role[] = [];
      for (const role of data.roles as unknown[]) {
        if (typeof role !== "object" || role === null) return null;
        const { id, org, orgCode, name } = role as Record<string, unknown>;
        if (typeof id !== "string" || id === "" || typeof name !== "string") return null;
        roles.push({ id, name, org: typeof org === "string" ? org : "", orgCode: typeof orgCode === "string" ? orgCode : "" });
      }
      return { kind: "role", origin, roles };
    }
    case "consent": {
      const { count, algorithm, description } = data;
      if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) return null;
      if (algorithm !== "RS1" && algorithm !== "RS256") return null;
      let text = typeof description === "string" ? description.trim() : "";
      if (text.length > MAX_DESCRIPTION) text = `${text.slice(0, MAX_DESCRIPTION - 1)}…`;
      return { kind: "consent", origin, description: text, count, algorithm };
    }
    default:
      return null;
  }
}

/**
 * A job role as people say it: the Spine sends the whole path,
 * `"Clinical":"Clinical Provision":"Nurse Access Role"`; the last part is the role.
 */
export function roleShortName(name: string): string {
  const parts = [...name.matchAll(/"([^"]*)"/g)].map((m) => m[1]!.trim()).filter(Boolean);
  return parts.length > 0 ? parts[parts.length - 1]! : name;
}

/** The role's line in the list: "Role — Organisation (CODE)". */
export function roleLabel(role: Role): string {
  const where = role.org && role.orgCode ? `${role.org} (${role.orgCode})` : role.org || role.orgCode;
  const name = roleShortName(role.name);
  return where ? `${name} — ${where}` : name;
}

/** Seconds left as m:ss. */
export function formatRemaining(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  return `${minutes}:${seconds.toString().padStart(2, "0")}`;
}
