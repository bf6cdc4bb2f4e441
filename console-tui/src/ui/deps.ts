import type { AgentClient } from '@clgw/agent/api/client.js';

/** What the console screens need from outside: the agent's API and the machine's addresses. */
export interface ConsoleDeps {
  client: Pick<
    AgentClient,
    | 'status'
    | 'presence'
    | 'post'
    | 'setSsh'
    | 'network'
    | 'changeNetwork'
    | 'createLogLink'
    | 'revokeLogLinks'
  >;
  /** The LAN's IPv4 addresses (non-loopback), read at each refresh. */
  addresses(): string[];
  /** How often the screens ask the agent again. */
  refreshMs: number;
}

/** The message of anything thrown, for the screen. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
