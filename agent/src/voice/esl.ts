import net from 'node:net';
import { ClgwError } from '@clgw/core/errors.js';
import type { Clock } from '@clgw/core/platform/clock.js';

/**
 * FreeSWITCH's event socket (mod_event_socket, inbound mode), as much of it as asking how many
 * calls are up takes (issue #22). The wire format: every message is a block of `Name: value`
 * header lines ended by an empty line, followed — when a `Content-Length` header says so — by
 * that many bytes of body. The server speaks first (`Content-Type: auth/request`); the client
 * answers `auth <password>` and then `api <command>`, each command ended by an empty line; the
 * server answers a command with `command/reply` (its `Reply-Text` starting `+OK` or `-ERR`) and
 * an api call with `api/response` (the command's output as the body).
 */

/** One message from the server. */
export interface EslMessage {
  /** Header names as sent (FreeSWITCH's are `Content-Type`, `Reply-Text`, `Content-Length`, …). */
  headers: Map<string, string>;
  body: string;
}

/** Larger header blocks or bodies are not FreeSWITCH answering these questions: refused. */
export const MAX_HEADER_BYTES = 8 * 1024;
export const MAX_BODY_BYTES = 64 * 1024;

/**
 * Splits the bytes of an event socket into messages, whatever pieces the network delivers them
 * in. Throws VOICE_PROTOCOL on what is not the event socket's framing.
 */
export class EslParser {
  private buffer: Buffer = Buffer.alloc(0);
  private pending: Map<string, string> | undefined;
  private bodyLength = 0;

  constructor(private readonly source: string) {}

  /** Takes the next bytes; returns the messages they complete. */
  push(bytes: Buffer): EslMessage[] {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, bytes]) : bytes;
    const out: EslMessage[] = [];
    for (;;) {
      if (!this.pending) {
        // Newlines between messages carry nothing.
        let start = 0;
        while (start < this.buffer.length && this.buffer[start] === 0x0a) start++;
        this.buffer = this.buffer.subarray(start);
        const end = this.buffer.indexOf('\n\n');
        if (end < 0) {
          if (this.buffer.length > MAX_HEADER_BYTES)
            throw this.invalid(`a header block longer than ${MAX_HEADER_BYTES} bytes`);
          return out;
        }
        if (end > MAX_HEADER_BYTES)
          throw this.invalid(`a header block longer than ${MAX_HEADER_BYTES} bytes`);
        this.pending = this.headers(this.buffer.subarray(0, end).toString('utf8'));
        this.buffer = this.buffer.subarray(end + 2);
        const length = this.pending.get('Content-Length');
        this.bodyLength = length === undefined ? 0 : Number(length);
        if (!/^\d+$/.test(length ?? '0') || this.bodyLength > MAX_BODY_BYTES)
          throw this.invalid(`a Content-Length of ${JSON.stringify(length)} (at most ${MAX_BODY_BYTES})`);
      }
      if (this.buffer.length < this.bodyLength) return out;
      out.push({ headers: this.pending, body: this.buffer.subarray(0, this.bodyLength).toString('utf8') });
      this.buffer = this.buffer.subarray(this.bodyLength);
      this.pending = undefined;
      this.bodyLength = 0;
    }
  }

  private headers(block: string): Map<string, string> {
    const headers = new Map<string, string>();
    for (const line of block.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon <= 0)
        throw this.invalid(`a header line without "Name: value": ${JSON.stringify(line.slice(0, 80))}`);
      headers.set(line.slice(0, colon), line.slice(colon + 2));
    }
    return headers;
  }

  private invalid(what: string): ClgwError {
    return new ClgwError(
      'VOICE_PROTOCOL',
      `the voice service's event socket at ${this.source} sent ${what}`,
      {
        transient: true,
        details: { source: this.source },
      },
    );
  }
}

export interface EslTarget {
  host: string;
  port: number;
  /** Never logged nor put in an error. */
  password: string;
}

/** What `show calls count` answers: "\n2 total.\n\n" (or "0 total."). */
export function parseCallCount(body: string, source: string): number {
  const m = /^\s*(\d+) total\.\s*$/.exec(body);
  if (!m)
    throw new ClgwError(
      'VOICE_PROTOCOL',
      `the voice service at ${source} answered "show calls count" with ${JSON.stringify(body.slice(0, 80))}`,
      { transient: true, details: { source } },
    );
  return Number(m[1]);
}

/**
 * Asks the voice service how many calls are up: connects, authenticates, runs `api show calls
 * count`, and closes. The whole exchange is bounded by `timeoutMs` on the injected clock.
 * VOICE_UNREACHABLE when it cannot be reached or does not answer in time, VOICE_AUTH_FAILED
 * when the password is refused, VOICE_PROTOCOL on anything else it says; each names host:port.
 */
export async function activeCalls(
  target: EslTarget,
  o: { clock: Clock; timeoutMs: number; signal?: AbortSignal },
): Promise<number> {
  const source = `${target.host}:${target.port}`;
  // A line break would end the auth command early and send the rest as a command of its own.
  if (/[\r\n]/.test(target.password))
    throw new ClgwError('CONFIG_INVALID', `the event socket password for ${source} holds a line break`, {
      details: { source },
    });
  const socket = net.connect({ host: target.host, port: target.port });
  const parser = new EslParser(source);
  const queue: EslMessage[] = [];
  let wake: (() => void) | undefined;
  let failure: ClgwError | undefined;
  let ended = false;
  const fail = (e: ClgwError) => {
    failure ??= e;
    wake?.();
  };
  socket.on('data', (bytes: Buffer) => {
    try {
      queue.push(...parser.push(bytes));
    } catch (e) {
      fail(e as ClgwError);
    }
    wake?.();
  });
  socket.on('error', (e: NodeJS.ErrnoException) =>
    fail(
      new ClgwError(
        'VOICE_UNREACHABLE',
        `cannot reach the voice service's event socket at ${source}: ${e.code ?? e.message}`,
        {
          transient: true,
          details: { source, errno: e.code ?? null },
        },
      ),
    ),
  );
  socket.on('close', () => {
    ended = true;
    wake?.();
  });
  const stop = new AbortController();
  const deadline = o.clock
    .sleep(o.timeoutMs, o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal)
    .then(
      () =>
        fail(
          new ClgwError(
            'VOICE_UNREACHABLE',
            `the voice service's event socket at ${source} did not answer within ${o.timeoutMs} ms`,
            {
              transient: true,
              details: { source, timeoutMs: o.timeoutMs },
            },
          ),
        ),
      // Ended by the caller's signal, or by our own stop once the exchange is over (nothing to say).
      () => {
        if (o.signal?.aborted)
          fail(
            new ClgwError('VOICE_UNREACHABLE', `asking ${source} for its calls was cancelled`, {
              transient: true,
              details: { source },
            }),
          );
      },
    );

  /** The next message, of the given Content-Type (FreeSWITCH may send others: skipped). */
  const next = async (type: string): Promise<EslMessage> => {
    for (;;) {
      if (failure) throw failure;
      const m = queue.shift();
      if (m) {
        if (m.headers.get('Content-Type') === type) return m;
        if (m.headers.get('Content-Type') === 'text/disconnect-notice')
          throw new ClgwError('VOICE_PROTOCOL', `the voice service at ${source} closed the event socket`, {
            transient: true,
            details: { source },
          });
        continue;
      }
      if (ended)
        throw new ClgwError(
          'VOICE_PROTOCOL',
          `the voice service at ${source} closed the event socket mid-exchange`,
          {
            transient: true,
            details: { source },
          },
        );
      await new Promise<void>((r) => {
        wake = r;
      });
      wake = undefined;
    }
  };

  try {
    await next('auth/request');
    socket.write(`auth ${target.password}\n\n`);
    const reply = (await next('command/reply')).headers.get('Reply-Text') ?? '';
    if (!reply.startsWith('+OK'))
      throw new ClgwError(
        'VOICE_AUTH_FAILED',
        `the voice service at ${source} refused the event socket password`,
        {
          details: { source, reply: reply.slice(0, 80) },
        },
      );
    socket.write('api show calls count\n\n');
    const answer = await next('api/response');
    if (answer.body.startsWith('-ERR'))
      throw new ClgwError(
        'VOICE_PROTOCOL',
        `the voice service at ${source} refused "show calls count": ${answer.body.trim().slice(0, 80)}`,
        {
          transient: true,
          details: { source },
        },
      );
    return parseCallCount(answer.body, source);
  } finally {
    stop.abort();
    await deadline;
    socket.destroy();
  }
}
