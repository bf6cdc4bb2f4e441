/**
 * Startup diagnostics, the effects: one probe per check, each with an explicit time limit and its
 * target passed in. A probe reports what it observed as data (checks.ts judges it); it does not
 * throw for anything the network does. Names are resolved through the configured DNS servers, as
 * the agent's HTTP client does, so the probes see what the update download would see.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import { contextTrusting } from '@clgw/core/platform/trust.js';
import type {
  DnsObservation,
  DnsServerObservation,
  HostPort,
  NtpObservation,
  PeerCertificate,
  ProbeFailure,
  StunObservation,
  TlsObservation,
} from './checks.js';
import {
  decodeSntpPacket,
  encodeSntpRequest,
  fromNtpTimestamp,
  type NtpTimestamp,
  sameNtpTimestamp,
  sntpOffset,
  sntpReplyProblem,
  toNtpTimestamp,
} from './sntp.js';
import { encodeBindingRequest, interpretBindingResponse, STUN_TRANSACTION_ID_BYTES } from './stun.js';

/** What every probe needs besides its target. */
export interface ProbeOptions {
  /** DNS servers for the target's name (`ip` or `ip:port`); empty: the system resolver. */
  dnsServers: readonly string[];
  /** The whole probe, name lookup included. */
  timeoutMs: number;
}

/** A time limit shared by the steps of one probe (lookup, then the exchange). */
class Budget {
  private readonly end: number;
  constructor(readonly limitMs: number) {
    this.end = performance.now() + limitMs;
  }
  remaining(): number {
    return Math.max(0, this.end - performance.now());
  }
}

const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/** A socket error as an observation; `stage` says how far the exchange had got. */
function socketFailure(e: NodeJS.ErrnoException, stage: 'connect' | 'tls' | 'answer'): ProbeFailure {
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED') return { outcome: 'refused' };
  if (UNREACHABLE.has(code)) return { outcome: 'unreachable', code };
  if (RESET.has(code)) return { outcome: 'reset', stage };
  // OpenSSL's own words ("wrong version number") are the useful part of a TLS protocol error.
  const reason = (e as { reason?: unknown }).reason;
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_')) {
    return {
      outcome: 'wrong-answer',
      reason: `not a TLS handshake (${typeof reason === 'string' ? reason : code})`,
    };
  }
  return { outcome: 'error', ...(code ? { code } : {}), message: e.message };
}

// ---------------------------------------------------------------------------------------------
// DNS

/**
 * A resolver that asks exactly `server`, bounded so that its two tries fit within `limitMs`;
 * undefined when `server` is not an `ip` or `ip:port` (reported as EBADSERVER).
 */
function resolverFor(server: string, limitMs: number): dns.promises.Resolver | undefined {
  // c-ares doubles the timeout on its second try: t + 2t stays within the limit.
  const resolver = new dns.promises.Resolver({ timeout: Math.max(50, Math.floor(limitMs / 3)), tries: 2 });
  try {
    resolver.setServers([server]);
  } catch {
    return undefined;
  }
  return resolver;
}

/** A, then AAAA when the name has no A record; addresses or the resolver's error code. */
async function resolveWith(
  resolver: dns.promises.Resolver,
  host: string,
  limitMs: number,
): Promise<string[]> {
  const timer = setTimeout(() => resolver.cancel(), limitMs);
  try {
    try {
      return await resolver.resolve4(host);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENODATA') throw e;
      return await resolver.resolve6(host);
    }
  } finally {
    clearTimeout(timer);
  }
}

function errorCode(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

/**
 * Looks `host` up through each DNS server on its own (so one dead server of two is seen), all at
 * once. With no servers configured, the system's (from resolv.conf) are asked the same way.
 */
export async function probeDns(
  host: string,
  servers: readonly string[],
  timeoutMs: number,
): Promise<DnsObservation> {
  const asked = servers.length > 0 ? [...servers] : dns.getServers();
  const answers = await Promise.all(
    asked.map(async (server): Promise<DnsServerObservation> => {
      const resolver = resolverFor(server, timeoutMs);
      if (!resolver) return { server, outcome: 'error', code: 'EBADSERVER' };
      try {
        return { server, outcome: 'answer', addresses: await resolveWith(resolver, host, timeoutMs) };
      } catch (e) {
        return { server, outcome: 'error', code: errorCode(e) };
      }
    }),
  );
  return { host, servers: answers, limitMs: timeoutMs };
}

/**
 * The address to connect to for `host`: an address as is, `localhost` locally (RFC 6761), a name
 * through the configured servers (the first that answers) or the system resolver.
 */
async function resolveTarget(
  host: string,
  servers: readonly string[],
  budget: Budget,
): Promise<{ address: string } | ProbeFailure> {
  if (net.isIP(host)) return { address: host };
  if (host === 'localhost') return { address: '127.0.0.1' };
  const limitMs = budget.remaining();
  if (servers.length === 0) {
    return new Promise((resolve) => {
      const timer = setTimeout(
        () => resolve({ outcome: 'timeout', stage: 'lookup', limitMs: budget.limitMs }),
        limitMs,
      );
      dns.lookup(host, { family: 0 }, (err, address) => {
        clearTimeout(timer);
        if (err) resolve({ outcome: 'lookup-failed', host, code: err.code ?? 'ENOTFOUND' });
        else resolve({ address });
      });
    });
  }
  let last = 'ENOTFOUND';
  for (const server of servers) {
    const resolver = resolverFor(server, budget.remaining());
    if (!resolver) {
      last = 'EBADSERVER';
      continue;
    }
    try {
      const addresses = await resolveWith(resolver, host, budget.remaining());
      if (addresses[0]) return { address: addresses[0] };
      last = 'ENODATA';
    } catch (e) {
      last = errorCode(e);
    }
    if (budget.remaining() <= 0) break;
  }
  if (last === 'ETIMEOUT' || last === 'ECANCELLED')
    return { outcome: 'timeout', stage: 'lookup', limitMs: budget.limitMs };
  return { outcome: 'lookup-failed', host, code: last };
}

// ---------------------------------------------------------------------------------------------
// UDP request/answer (NTP, STUN)

interface UdpExchange<T> {
  address: string;
  port: number;
  budget: Budget;
  /** The datagram for each (re)transmission. */
  request(): Uint8Array;
  /** The first datagram from the peer decides: an observation from it. */
  accept(reply: Buffer, local: { address: string; port: number }): T;
}

/**
 * Sends the request on a connected UDP socket (so only the peer's datagrams arrive, and an ICMP
 * port unreachable surfaces as ECONNREFUSED), retransmitting with a doubling interval from 500 ms
 * as RFC 5389 §7.2.1 does, until the first reply or the limit.
 */
function udpExchange<T>(x: UdpExchange<T>): Promise<T | ProbeFailure> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(x.address) ? 'udp6' : 'udp4');
    const timers: NodeJS.Timeout[] = [];
    let done = false;
    const finish = (result: T | ProbeFailure): void => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      socket.close();
      resolve(result);
    };
    const send = (): void => {
      if (done) return;
      try {
        socket.send(x.request(), (e) => e && finish(socketFailure(e, 'answer')));
      } catch (e) {
        finish({ outcome: 'error', message: e instanceof Error ? e.message : String(e) });
      }
    };
    socket.on('error', (e: NodeJS.ErrnoException) => finish(socketFailure(e, 'answer')));
    socket.on('message', (msg) => {
      const local = socket.address();
      try {
        finish(x.accept(msg, { address: local.address, port: local.port }));
      } catch (e) {
        finish({ outcome: 'error', message: e instanceof Error ? e.message : String(e) });
      }
    });
    const limitMs = x.budget.remaining();
    timers.push(
      setTimeout(() => finish({ outcome: 'timeout', stage: 'answer', limitMs: x.budget.limitMs }), limitMs),
    );
    socket.connect(x.port, x.address, () => {
      send();
      let at = 0;
      for (let rto = Math.min(500, limitMs / 4); at + rto < limitMs; rto *= 2) {
        at += rto;
        timers.push(setTimeout(send, at));
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// NTP

/**
 * One SNTP v4 exchange with `target`: the offset of our clock (`now`, injected) from the server's,
 * and the round trip. A reply that is not the server's answer to our request (wrong mode, origin
 * not echoed, kiss-o'-death, unsynchronized server) is a wrong answer, not a time.
 */
export async function probeNtp(
  target: HostPort,
  options: ProbeOptions & { now(): number },
): Promise<NtpObservation> {
  const budget = new Budget(options.timeoutMs);
  const resolved = await resolveTarget(target.host, options.dnsServers, budget);
  if (!('address' in resolved)) return resolved;
  const sent: { timestamp: NtpTimestamp; t1: number }[] = [];
  return udpExchange<NtpObservation>({
    address: resolved.address,
    port: target.port,
    budget,
    request: () => {
      const t1 = options.now();
      // Random low bits make the origin echo proof that the reply answers us, not a guess.
      const timestamp = toNtpTimestamp(t1, randomBytes(2).readUInt16BE(0));
      sent.push({ timestamp, t1 });
      return encodeSntpRequest(timestamp);
    },
    accept: (reply) => {
      const t4 = options.now();
      const packet = decodeSntpPacket(reply);
      if (typeof packet === 'string') return { outcome: 'wrong-answer', reason: packet };
      const problem = sntpReplyProblem(
        packet,
        sent.map((s) => s.timestamp),
      );
      if (problem) return { outcome: 'wrong-answer', reason: problem };
      const request = sent.find((s) => sameNtpTimestamp(s.timestamp, packet.origin))!;
      const t2 = fromNtpTimestamp(packet.receive);
      const t3 = fromNtpTimestamp(packet.transmit);
      return {
        outcome: 'answer',
        stratum: packet.stratum,
        referenceId: packet.referenceId,
        ...sntpOffset(request.t1, t2, t3, t4),
        address: resolved.address,
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// STUN

/** One STUN Binding Request to `target`: the address and port the server saw us come from. */
export async function probeStun(target: HostPort, options: ProbeOptions): Promise<StunObservation> {
  const budget = new Budget(options.timeoutMs);
  const resolved = await resolveTarget(target.host, options.dnsServers, budget);
  if (!('address' in resolved)) return resolved;
  const transactionId = new Uint8Array(randomBytes(STUN_TRANSACTION_ID_BYTES));
  const started = performance.now();
  return udpExchange<StunObservation>({
    address: resolved.address,
    port: target.port,
    budget,
    // Retransmissions keep the transaction ID (RFC 5389 §7.2.1).
    request: () => encodeBindingRequest(transactionId),
    accept: (reply, local) => {
      const outcome = interpretBindingResponse(new Uint8Array(reply), transactionId);
      if (outcome.kind === 'wrong') return { outcome: 'wrong-answer', reason: outcome.reason };
      if (outcome.kind === 'error')
        return { outcome: 'error-response', code: outcome.code, reason: outcome.reason };
      return {
        outcome: 'mapped',
        mapped: { address: outcome.mapped.address, port: outcome.mapped.port },
        attribute: outcome.attribute,
        local,
        roundTripMs: performance.now() - started,
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// TLS (HTTPS, SIP-TLS)

function certificateOf(socket: tls.TLSSocket): PeerCertificate | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  const name = (x: tls.Certificate | undefined): string => {
    const field = (k: keyof tls.Certificate): string => {
      const v = x?.[k];
      return Array.isArray(v) ? v.join(', ') : (v ?? '');
    };
    return field('CN') || field('O') || '';
  };
  return {
    subject: name(cert.subject),
    issuer: name(cert.issuer),
    altNames: cert.subjectaltname ?? '',
    validFrom: Date.parse(cert.valid_from),
    validTo: Date.parse(cert.valid_to),
  };
}

/**
 * A TCP connection and a TLS handshake with `target`, then a clean close; nothing is sent. The
 * chain is checked against the built-in roots plus `ca`, the name against `target.host`. The
 * handshake does not stop at an untrusted certificate, so the verdict can name what was presented.
 */
export async function probeTls(
  target: HostPort,
  options: ProbeOptions & { ca?: string },
): Promise<TlsObservation> {
  const budget = new Budget(options.timeoutMs);
  const resolved = await resolveTarget(target.host, options.dnsServers, budget);
  if (!('address' in resolved)) return resolved;
  const address = resolved.address;
  return new Promise((resolve) => {
    let connected = false;
    let done = false;
    const socket = tls.connect({
      host: address,
      port: target.port,
      // SNI carries names only (RFC 6066 §3).
      ...(net.isIP(target.host) ? {} : { servername: target.host }),
      ...(options.ca ? { secureContext: contextTrusting(options.ca) } : {}),
      rejectUnauthorized: false,
      // The name is checked below on its own, so that `authorized` speaks of the chain alone and
      // a wrong name is reported as such even when the chain is also untrusted.
      checkServerIdentity: () => undefined,
    });
    const finish = (result: TlsObservation): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ outcome: 'timeout', stage: connected ? 'tls' : 'connect', limitMs: budget.limitMs }),
      budget.remaining(),
    );
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('secureConnect', () => {
      const certificate = certificateOf(socket);
      const raw = socket.getPeerCertificate();
      const identity =
        raw && Object.keys(raw).length > 0 ? tls.checkServerIdentity(target.host, raw) : undefined;
      const authorizationError = socket.authorizationError as unknown;
      finish({
        outcome: 'handshake',
        protocol: socket.getProtocol() ?? 'TLS',
        authorized: socket.authorized,
        ...(socket.authorized
          ? {}
          : {
              authorizationError:
                authorizationError instanceof Error
                  ? ((authorizationError as NodeJS.ErrnoException).code ?? authorizationError.message)
                  : String(authorizationError),
            }),
        ...(identity ? { identityError: identity.message } : {}),
        ...(certificate ? { certificate } : {}),
        address,
      });
    });
    socket.on('error', (e: NodeJS.ErrnoException) => finish(socketFailure(e, connected ? 'tls' : 'connect')));
    socket.on('close', () => finish({ outcome: 'reset', stage: connected ? 'tls' : 'connect' }));
  });
}
