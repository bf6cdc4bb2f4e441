/**
 * The event socket client (agent/src/voice/esl.ts) against a server on loopback that speaks
 * FreeSWITCH's framing — here scripted per test, down to how it splits its bytes.
 */
import net from 'node:net';
import { ClgwError } from '@clgw/core/errors.js';
import { systemClock } from '@clgw/core/platform/clock.js';
import { afterEach, describe, expect, it } from 'vitest';
import { activeCalls, EslParser } from '../../../agent/src/voice/esl.js';

const PASSWORD = 'Cl0seTheDoor';
const servers: net.Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

type Script = (socket: net.Socket, commands: string[]) => void;

/** A server that greets, then answers each command ("…\n\n") by `answer`. */
function eventSocket(answer: (command: string, socket: net.Socket) => void, greet = true): Script {
  return (socket, commands) => {
    if (greet) socket.write('Content-Type: auth/request\n\n');
    let buffered = '';
    socket.on('data', (b: Buffer) => {
      buffered += b.toString();
      for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
        const command = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        commands.push(command);
        answer(command, socket);
      }
    });
  };
}

/** FreeSWITCH's answers, as it frames them. */
const accepted = 'Content-Type: command/reply\nReply-Text: +OK accepted\n\n';
const apiResponse = (body: string) =>
  `Content-Type: api/response\nContent-Length: ${Buffer.byteLength(body)}\n\n${body}`;
const freeswitch = (calls: number, write: (s: net.Socket, text: string) => void = (s, t) => s.write(t)) =>
  eventSocket((command, socket) => {
    if (command === `auth ${PASSWORD}`) write(socket, accepted);
    else if (command.startsWith('auth '))
      write(socket, 'Content-Type: command/reply\nReply-Text: -ERR invalid\n\n');
    else if (command === 'api show calls count') write(socket, apiResponse(`\n${calls} total.\n\n`));
    else write(socket, apiResponse(`-ERR ${command.replace(/^api /, '')} Command not found!\n`));
  });

async function serve(script: Script): Promise<{ port: number; commands: string[] }> {
  const commands: string[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    script(socket, commands);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, commands };
}

const ask = (port: number, password = PASSWORD, timeoutMs = 5000) =>
  activeCalls({ host: '127.0.0.1', port, password }, { clock: systemClock, timeoutMs });

async function failure(p: Promise<unknown>): Promise<ClgwError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ClgwError);
  return e as ClgwError;
}

describe('activeCalls', () => {
  it('authenticates, asks "show calls count" and reads the number', async () => {
    const s = await serve(freeswitch(2));
    expect(await ask(s.port)).toBe(2);
    expect(s.commands).toEqual([`auth ${PASSWORD}`, 'api show calls count']);
  });

  it('reads messages split at every byte', async () => {
    const s = await serve(
      freeswitch(7, (socket, text) => {
        for (const ch of text) socket.write(ch);
      }),
    );
    expect(await ask(s.port)).toBe(7);
  });

  it('a refused password is VOICE_AUTH_FAILED naming the server, never the password', async () => {
    const s = await serve(freeswitch(0));
    const e = await failure(ask(s.port, 'wrong-one'));
    expect(e.code).toBe('VOICE_AUTH_FAILED');
    expect(e.message).toContain(`127.0.0.1:${s.port}`);
    expect(JSON.stringify(e.toJSON())).not.toContain('wrong-one');
  });

  it('-ERR for the command is VOICE_PROTOCOL with what the server said', async () => {
    const s = await serve(
      eventSocket((command, socket) =>
        socket.write(command.startsWith('auth') ? accepted : apiResponse('-ERR show Command not found!\n')),
      ),
    );
    const e = await failure(ask(s.port));
    expect(e.code).toBe('VOICE_PROTOCOL');
    expect(e.message).toContain('Command not found');
  });

  it('garbage, or a header block without end, is VOICE_PROTOCOL', async () => {
    const http = await serve((socket) => socket.write('HTTP/1.1 200 OK\nServer: not-freeswitch\n\n'));
    expect((await failure(ask(http.port))).code).toBe('VOICE_PROTOCOL');
    const endless = await serve((socket) => socket.write(`Content-Type: ${'x'.repeat(9000)}`));
    expect((await failure(ask(endless.port))).code).toBe('VOICE_PROTOCOL');
  });

  it('a server that never answers is VOICE_UNREACHABLE after the timeout', async () => {
    const s = await serve(() => undefined);
    const e = await failure(ask(s.port, PASSWORD, 300));
    expect(e.code).toBe('VOICE_UNREACHABLE');
    expect(e.message).toContain('within 300 ms');
  });

  it('a closed port is VOICE_UNREACHABLE naming host:port', async () => {
    const s = await serve(() => undefined);
    await new Promise((r) => servers.pop()!.close(r));
    const e = await failure(ask(s.port));
    expect(e.code).toBe('VOICE_UNREACHABLE');
    expect(e.message).toContain(`127.0.0.1:${s.port}`);
    expect(e.message).toContain('ECONNREFUSED');
  });

  it('a password with a line break is refused before connecting', async () => {
    const s = await serve(freeswitch(1));
    expect((await failure(ask(s.port, 'a\napi hupall'))).code).toBe('CONFIG_INVALID');
    expect(s.commands).toEqual([]);
  });
});

describe('EslParser', () => {
  it('frames headers, bodies by Content-Length, and skips newlines between messages', () => {
    const p = new EslParser('test');
    const body = 'line one\n\nline two';
    const messages = p.push(
      Buffer.from(
        `Content-Type: auth/request\n\n\nContent-Type: api/response\nContent-Length: ${body.length}\n\n${body}`,
      ),
    );
    expect(messages.map((m) => [m.headers.get('Content-Type'), m.body])).toEqual([
      ['auth/request', ''],
      ['api/response', body],
    ]);
  });

  it('refuses a Content-Length that is not a number or is too large', () => {
    expect(() => new EslParser('t').push(Buffer.from('Content-Length: -1\n\n'))).toThrow(/Content-Length/);
    expect(() => new EslParser('t').push(Buffer.from('Content-Length: 999999\n\n'))).toThrow(
      /Content-Length/,
    );
  });
});
