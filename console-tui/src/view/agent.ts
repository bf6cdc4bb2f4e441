/**
 * The agent being away, as the console says it: one plain sentence, and the technical detail
 * (socket and error code) once, on a line of its own. Pure.
 */

/** The sentence both screens show while the agent does not answer. */
export const AGENT_AWAY = 'The gateway agent is not answering; trying again every second.';

/**
 * The detail under {@link AGENT_AWAY}: `socket /run/clgw/agent.sock: ECONNREFUSED` for the
 * client's AGENT_UNREACHABLE (whose message repeats the sentence), the message otherwise.
 */
export function agentAwayDetail(e: unknown): string {
  const err = (typeof e === 'object' && e !== null ? e : {}) as {
    code?: unknown;
    message?: unknown;
    details?: { socket?: unknown };
    cause?: { code?: unknown; message?: unknown };
  };
  const socket = err.details?.socket;
  if (err.code === 'AGENT_UNREACHABLE' && typeof socket === 'string') {
    const why =
      typeof err.cause?.code === 'string'
        ? err.cause.code
        : typeof err.cause?.message === 'string'
          ? err.cause.message
          : 'no answer';
    return `socket ${socket}: ${why}`;
  }
  return typeof err.message === 'string' ? err.message : String(e);
}
