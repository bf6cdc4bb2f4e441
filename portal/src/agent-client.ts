/**
 * The portal's only way to the agent: its narrow socket (`run/clgw/portal.sock`, the routes of
 * `@clgw/agent/api/portal-contract.js`). Kept-alive connections, a few at most; every call has a
 * time limit, so a stuck agent never holds the portal's requests for long.
 */
import http from 'node:http';
import type { PortalAction, PortalInput } from '@clgw/agent/api/portal-contract.js';

/** A refusal or failure, with the agent's stable code (or the portal's own, e.g. AGENT_UNREACHABLE). */
export class AgentAnswerError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The HTTP status the portal answers with. */
    readonly status: number,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** What the portal needs from the agent: {@link PortalAgentClient} over the socket. */
export interface PortalAgent {
  view(): Promise<PortalInput>;
  act(action: PortalAction, code: string | undefined, client: string): Promise<void>;
  /** The log archive behind a link token, as a stream; undefined for any other token. */
  openLog(token: string): Promise<{ name: string; size: number; body: http.IncomingMessage } | undefined>;
}

const MAX_ANSWER = 1024 * 1024;

export class PortalAgentClient implements PortalAgent {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4, maxFreeSockets: 2 });

  constructor(
    private readonly socketPath: string,
    private readonly timeoutMs = 5_000,
  ) {}

  async view(): Promise<PortalInput> {
    return (await this.json('GET', '/v1/view')) as PortalInput;
  }

  async act(action: PortalAction, code: string | undefined, client: string): Promise<void> {
    await this.json('POST', `/v1/${action}`, code === undefined ? {} : { code }, { 'x-clgw-client': client });
  }

  async openLog(token: string) {
    // Only a token's own characters reach the agent's path.
    if (!/^[A-Za-z0-9_-]{1,128}$/.test(token)) return undefined;
    const res = await this.send('GET', `/v1/logs/${token}`);
    if (res.statusCode !== 200) {
      res.resume();
      if (res.statusCode === 404) return undefined;
      throw new AgentAnswerError('BUSY', 'the log archive cannot be sent now; try again', 503);
    }
    // The agent streams as long as the body takes; the per-call limit covered the answer's head.
    res.socket.setTimeout(0);
    const name = String(res.headers['x-clgw-filename'] ?? 'clgw-logs.tar.gz');
    return { name, size: Number(res.headers['content-length'] ?? 0), body: res };
  }

  close(): void {
    this.agent.destroy();
  }

  private async json(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<unknown> {
    const res = await this.send(method, path, body, headers);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res) {
      size += (chunk as Buffer).length;
      if (size > MAX_ANSWER) throw unreachable(this.socketPath, 'its answer is too large');
      chunks.push(chunk as Buffer);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw unreachable(this.socketPath, 'its answer is not JSON');
    }
    const status = res.statusCode ?? 500;
    if (status >= 400) {
      const err = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } }).error;
      throw new AgentAnswerError(
        typeof err?.code === 'string' ? err.code : 'INTERNAL',
        typeof err?.message === 'string' ? err.message : `the agent answered HTTP ${status}`,
        status,
        typeof err?.details === 'object' && err.details !== null
          ? (err.details as Record<string, unknown>)
          : undefined,
      );
    }
    return parsed;
  }

  private send(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<http.IncomingMessage> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          path,
          method,
          timeout: this.timeoutMs,
          headers: {
            ...headers,
            ...(payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
          },
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        const why = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'not running' : e.message;
        reject(unreachable(this.socketPath, why));
      });
      req.end(payload);
    });
  }
}

function unreachable(socketPath: string, why: string): AgentAnswerError {
  return new AgentAnswerError(
    'AGENT_UNREACHABLE',
    `the gateway's agent is not answering on ${socketPath}: ${why}`,
    503,
  );
}
