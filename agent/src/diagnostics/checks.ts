/**
 * Startup diagnostics, the pure part: which checks run against which targets, what a probe may
 * observe, and the verdict rules that turn an observation into one plain line a technician
 * understands ("DNS lookup of download.mitel.io via 10.0.0.53 failed: no answer within 3 s").
 * Verdicts are data, never errors. No `node:*` imports: the probes (probes.ts) do the I/O.
 */
import { ClgwError } from '@clgw/core/errors.js';

export const DIAGNOSTIC_NAMES = ['dns', 'ntp', 'https', 'stun-3478', 'stun-3479', 'sip-tls'] as const;
export type DiagnosticName = (typeof DIAGNOSTIC_NAMES)[number];
export type Verdict = 'ok' | 'warning' | 'failed';

export interface DiagnosticResult {
  name: DiagnosticName;
  /** What was asked: `host:port`, or the DNS server(s). */
  target: string;
  verdict: Verdict;
  /** One plain line: what works, or what failed and why, naming host, port and value. */
  summary: string;
  /** Machine-readable facts (addresses, offset, certificate, error code) for the API and the log. */
  details?: Record<string, unknown>;
  durationMs: number;
}

export interface DiagnosticsReport {
  /** ISO 8601 time the run started. */
  at: string;
  results: DiagnosticResult[];
  /** No check failed (warnings allowed). */
  ok: boolean;
}

/**
 * Targets and limits. Host strings are `host`, `host:port` or `[v6]:port`; a missing port is the
 * service's well-known one. The agent fills this from its config and the network settings.
 */
export interface DiagnosticsConfig {
  /** DNS servers (`ip` or `ip:port`) every name here is resolved through; empty: the system's. */
  dnsServers: readonly string[];
  /** The download server: looked up (dns) and greeted with a TLS handshake (https, port 443). */
  downloadHost: string;
  /** SNTP server (port 123). */
  ntpServer: string;
  /** STUN server host; absent: the STUN checks report "not configured". */
  stunHost?: string;
  /** The two STUN ports; the checks keep their names `stun-3478` and `stun-3479` whatever these are. */
  stunPorts?: readonly [number, number];
  /** SIP-TLS server (port 5061); absent: the check reports "not configured". */
  sipTlsServer?: string;
  /** Extra trusted CA (PEM), added to the built-in roots: a local mirror, the tests' CA. */
  ca?: string;
  /** Per check, lookup of the target's name included. */
  timeoutMs?: number;
  /** A clock further off than this is a warning. */
  maxClockOffsetMs?: number;
  /** A certificate that expires within this many days is a warning. */
  certExpiryWarningDays?: number;
}

export const DIAGNOSTIC_DEFAULTS = {
  httpsPort: 443,
  ntpPort: 123,
  stunPorts: [3478, 3479] as const,
  sipTlsPort: 5061,
  dnsPort: 53,
  timeoutMs: 3000,
  /** Beyond a second the time sync is not working; TLS and release expiry only break at minutes. */
  maxClockOffsetMs: 1000,
  certExpiryWarningDays: 14,
} as const;

export interface HostPort {
  host: string;
  port: number;
}

/** `host:port` as people write it: IPv6 in brackets. */
export function formatHostPort(t: HostPort): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/** Parses `host`, `host:port`, `[v6]` or `[v6]:port`; CONFIG_INVALID names the value at fault. */
export function parseHostPort(text: string, defaultPort: number, what: string): HostPort {
  const value = text.trim();
  // A bare IPv6 address has more than one colon and no port; `[v6]:port` carries one.
  if (/^[0-9A-Fa-f:.]+$/.test(value) && value.split(':').length > 2)
    return { host: value, port: defaultPort };
  const m = /^\[([0-9A-Fa-f:.]+)\](?::(\d+))?$/.exec(value) ?? /^([A-Za-z0-9._-]+)(?::(\d+))?$/.exec(value);
  const host = m?.[1];
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ClgwError('CONFIG_INVALID', `${what} '${text}' is not a host or host:port`, {
      details: { field: what, value: text },
    });
  }
  return { host, port };
}

/** One check of the run: its name and its target, parsed (or why the target is unusable). */
export type PlannedCheck =
  | { name: 'dns'; host: string; servers: readonly string[] }
  | { name: 'ntp' | 'https' | 'stun-3478' | 'stun-3479' | 'sip-tls'; target: HostPort }
  /** Nothing to check against; `unconfigured` says why, as a person reads it. */
  | { name: DiagnosticName; unconfigured: string }
  | { name: DiagnosticName; invalid: string; text: string };

function planTarget(
  name: Exclude<DiagnosticName, 'dns'>,
  text: string | undefined,
  port: number,
  what: string,
): PlannedCheck {
  if (text === undefined || text.trim() === '') return { name, unconfigured: `no ${what} configured` };
  try {
    const target = parseHostPort(text, port, what);
    return { name, target };
  } catch (e) {
    return { name, invalid: e instanceof Error ? e.message : String(e), text };
  }
}

/** A bare host name or address (`[v6]` allowed); CONFIG_INVALID names the value at fault. */
export function parseHost(text: string, what: string): string {
  const value = text.trim();
  const host = /^\[([0-9A-Fa-f:.]+)\]$/.exec(value)?.[1] ?? value;
  if (!/^[A-Za-z0-9._-]+$/.test(host) && !/^[0-9A-Fa-f:.]+$/.test(host)) {
    throw new ClgwError('CONFIG_INVALID', `${what} '${text}' is not a host name or address`, {
      details: { field: what, value: text },
    });
  }
  return host;
}

/** An IPv4 or IPv6 address rather than a name: nothing for DNS to do. */
export function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

/** The check list, in the order they are shown. */
export function planChecks(config: DiagnosticsConfig): PlannedCheck[] {
  const [stunA, stunB] = config.stunPorts ?? DIAGNOSTIC_DEFAULTS.stunPorts;
  const stun = (name: 'stun-3478' | 'stun-3479', port: number): PlannedCheck => {
    const text = config.stunHost?.trim();
    if (!text) return { name, unconfigured: 'no STUN server configured' };
    try {
      const host = parseHost(text, 'STUN server');
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        return { name, invalid: `STUN port ${port} is not a port number`, text: String(port) };
      }
      return { name, target: { host, port } };
    } catch (e) {
      return { name, invalid: e instanceof Error ? e.message : String(e), text };
    }
  };
  const download = planTarget('https', config.downloadHost, DIAGNOSTIC_DEFAULTS.httpsPort, 'download host');
  const dnsHost = 'target' in download ? download.target.host : config.downloadHost;
  const dns: PlannedCheck = isIpLiteral(dnsHost)
    ? { name: 'dns', unconfigured: `the download host ${dnsHost} is an address, there is no name to look up` }
    : { name: 'dns', host: dnsHost, servers: config.dnsServers };
  return [
    dns,
    planTarget('ntp', config.ntpServer, DIAGNOSTIC_DEFAULTS.ntpPort, 'NTP server'),
    download,
    stun('stun-3478', stunA),
    stun('stun-3479', stunB),
    planTarget('sip-tls', config.sipTlsServer, DIAGNOSTIC_DEFAULTS.sipTlsPort, 'SIP-TLS server'),
  ];
}

// ---------------------------------------------------------------------------------------------
// Observations: what a probe saw, as plain data.

/** Network failures every probe can meet. `stage` says how far the exchange got. */
export type ProbeFailure =
  /** Nothing came back within the limit. */
  | { outcome: 'timeout'; stage: 'lookup' | 'connect' | 'tls' | 'answer'; limitMs: number }
  /** TCP RST, or ICMP port unreachable for UDP: the host is there, nothing listens on the port. */
  | { outcome: 'refused' }
  | { outcome: 'unreachable'; code: string }
  /** The connection was closed or reset before the exchange finished. */
  | { outcome: 'reset'; stage: 'connect' | 'tls' | 'answer' }
  /** The target's own name did not resolve. */
  | { outcome: 'lookup-failed'; host: string; code: string }
  /** Something answered, but not with an answer to our request. */
  | { outcome: 'wrong-answer'; reason: string }
  /** Any other error, with its code when the system gave one. */
  | { outcome: 'error'; code?: string; message: string };

/** One DNS server's answer for the download host. */
export type DnsServerObservation =
  | { server: string; outcome: 'answer'; addresses: string[] }
  | { server: string; outcome: 'error'; code: string };

export interface DnsObservation {
  host: string;
  /** Empty when there was no server to ask. */
  servers: DnsServerObservation[];
  limitMs: number;
}

export type NtpObservation =
  | {
      outcome: 'answer';
      stratum: number;
      referenceId: string;
      offsetMs: number;
      roundTripMs: number;
      /** The address the name resolved to, when it was a name. */
      address: string;
    }
  | ProbeFailure;

/** The certificate the server presented, as far as the verdict needs it. */
export interface PeerCertificate {
  subject: string;
  issuer: string;
  /** Names the certificate is valid for (subjectAltName), as `DNS:…`/`IP Address:…`. */
  altNames: string;
  validFrom: number;
  validTo: number;
}

export type TlsObservation =
  | {
      outcome: 'handshake';
      protocol: string;
      /** The chain verified against the trusted roots; else the OpenSSL code in `authorizationError`. */
      authorized: boolean;
      authorizationError?: string;
      /** The certificate does not name the host we asked for. */
      identityError?: string;
      certificate?: PeerCertificate;
      address: string;
    }
  | ProbeFailure;

export type StunObservation =
  | {
      outcome: 'mapped';
      mapped: { address: string; port: number };
      attribute: 'XOR-MAPPED-ADDRESS' | 'MAPPED-ADDRESS';
      local: { address: string; port: number };
      roundTripMs: number;
    }
  | { outcome: 'error-response'; code: number; reason: string }
  | ProbeFailure;

/** What a verdict rule produces; the runner adds name, target and duration. */
export interface Judgement {
  verdict: Verdict;
  summary: string;
  details?: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Wording.

/** `3 s`, `1.5 s`, `250 ms`: the limit as a person reads it. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** `+2.4 s`, `-0.003 s`: the sign always shown, milliseconds kept below ten seconds. */
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const s = Math.abs(ms) / 1000;
  const text = s >= 10 ? s.toFixed(1) : s >= 1 ? s.toFixed(2).replace(/\.?0+$/, '') : s.toFixed(3);
  return `${sign}${text} s`;
}

const DNS_REASONS: Record<string, string> = {
  ENOTFOUND: 'no such name (NXDOMAIN)',
  ENODATA: 'no address (the answer is empty)',
  ESERVFAIL: 'the server failed (SERVFAIL)',
  EREFUSED: 'the server refused the query (REFUSED)',
  ECONNREFUSED: 'refused (no DNS server listening)',
  EBADRESP: 'wrong answer (malformed reply)',
  EFORMERR: 'wrong answer (the server says our query was malformed)',
  EBADFAMILY: 'wrong answer (unexpected address family)',
  ENOTIMP: 'the server does not implement the query (NOTIMP)',
  ECONNRESET: 'connection reset',
  // Ours (probes.ts): the configured server is not an `ip` or `ip:port` the resolver takes.
  EBADSERVER: 'not a DNS server address (expected ip or ip:port)',
};

/** Why a DNS server failed, in words; timeouts name the limit. */
export function dnsReason(code: string, limitMs: number): string {
  if (code === 'ETIMEOUT' || code === 'ETIMEDOUT' || code === 'ECANCELLED') {
    return `no answer within ${formatDuration(limitMs)}`;
  }
  return DNS_REASONS[code] ?? `resolver error ${code}`;
}

/** The failure as the end of a sentence about `what` (e.g. "TLS handshake with h:443"). */
function failureReason(f: ProbeFailure, target: HostPort, proto: 'tcp' | 'udp'): string {
  const port = `${proto}/${target.port}`;
  switch (f.outcome) {
    case 'timeout':
      if (f.stage === 'lookup')
        return `the name ${target.host} did not resolve within ${formatDuration(f.limitMs)}`;
      if (f.stage === 'connect')
        return `no TCP connection within ${formatDuration(f.limitMs)} (${port} blocked?)`;
      if (f.stage === 'tls') return `the handshake did not finish within ${formatDuration(f.limitMs)}`;
      return `no answer within ${formatDuration(f.limitMs)}${proto === 'udp' ? ` (${port} blocked?)` : ''}`;
    case 'refused':
      return proto === 'tcp'
        ? `connection refused (nothing listening on ${port})`
        : `refused (ICMP port unreachable: nothing listening on ${port})`;
    case 'unreachable':
      return `host unreachable (${f.code})`;
    case 'reset':
      return f.stage === 'tls' ? 'the server closed the connection during the handshake' : 'connection reset';
    case 'lookup-failed':
      return `the name ${f.host} did not resolve: ${dnsReason(f.code, 0)}`;
    case 'wrong-answer':
      return `wrong answer: ${f.reason}`;
    case 'error':
      return f.code && !f.message.includes(f.code) ? `${f.message} (${f.code})` : f.message;
  }
}

function failureDetails(f: ProbeFailure): Record<string, unknown> {
  return { ...f };
}

// ---------------------------------------------------------------------------------------------
// Verdict rules.

/**
 * DNS: every server answered with an address → ok; some did → warning naming the ones that did
 * not; none did → failed with each server's reason. An empty answer is "no address".
 */
export function judgeDns(obs: DnsObservation): Judgement {
  if (obs.servers.length === 0) {
    return {
      verdict: 'failed',
      summary: `DNS lookup of ${obs.host} failed: no DNS server configured`,
      details: { host: obs.host, servers: [] },
    };
  }
  const good: { server: string; addresses: string[] }[] = [];
  const bad: { server: string; code: string }[] = [];
  for (const s of obs.servers) {
    if (s.outcome === 'answer' && s.addresses.length > 0) good.push(s);
    // An answer without addresses is a failure of its own kind: the name exists, the address does not.
    else bad.push({ server: s.server, code: s.outcome === 'error' ? s.code : 'ENODATA' });
  }
  const details = {
    host: obs.host,
    servers: obs.servers.map((s) => s.server),
    addresses: [...new Set(good.flatMap((s) => s.addresses))],
    failures: bad,
  };
  const failures = bad.map((b) => `via ${b.server} failed: ${dnsReason(b.code, obs.limitMs)}`);
  if (good.length === 0) {
    return { verdict: 'failed', summary: `DNS lookup of ${obs.host} ${failures.join('; ')}`, details };
  }
  const first = good[0]!;
  const more = first.addresses.length > 1 ? ` (+${first.addresses.length - 1} more)` : '';
  const via = good.map((s) => s.server).join(', ');
  const found = `${obs.host} is ${first.addresses[0]}${more} via ${via}`;
  if (bad.length === 0) return { verdict: 'ok', summary: found, details };
  return { verdict: 'warning', summary: `${found}, but ${failures.join('; ')}`, details };
}

/** NTP: an answer within ±maxOffset → ok; beyond → warning with the offset; no usable answer → failed. */
export function judgeNtp(
  target: HostPort,
  obs: NtpObservation,
  maxOffsetMs: number = DIAGNOSTIC_DEFAULTS.maxClockOffsetMs,
): Judgement {
  const where = formatHostPort(target);
  if (obs.outcome !== 'answer') {
    return {
      verdict: 'failed',
      summary: `NTP query to ${where} failed: ${failureReason(obs, target, 'udp')}`,
      details: failureDetails(obs),
    };
  }
  const details = {
    offsetMs: round3(obs.offsetMs),
    roundTripMs: round3(obs.roundTripMs),
    stratum: obs.stratum,
    referenceId: obs.referenceId,
    address: obs.address,
    maxOffsetMs,
  };
  const line = `clock offset ${formatOffset(obs.offsetMs)} from ${where} (stratum ${obs.stratum}, round trip ${formatDuration(obs.roundTripMs)})`;
  if (Math.abs(obs.offsetMs) > maxOffsetMs) {
    return {
      verdict: 'warning',
      summary: `${line}: beyond ±${formatDuration(maxOffsetMs)}, the clock is not in sync`,
      details,
    };
  }
  return { verdict: 'ok', summary: line, details };
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

/** OpenSSL's verification codes in words; the code itself stays in the details. */
const CERT_REASONS: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'issued by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'issued by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT: 'issued by a CA that is not trusted',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'chains to a self-signed CA that is not trusted',
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not valid yet (is the clock right?)',
  CERT_REVOKED: 'revoked',
  CERT_UNTRUSTED: 'not trusted',
  CERT_REJECTED: 'rejected',
  CERT_SIGNATURE_FAILURE: 'badly signed',
  INVALID_CA: 'issued by an invalid CA',
};

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * TLS (https, sip-tls): a handshake with a trusted certificate that names the host → ok, or a
 * warning when it expires soon; an untrusted certificate, a wrong host name or no handshake →
 * failed, naming the reason (and the certificate's issuer: a TLS-inspecting firewall shows there).
 */
export function judgeTls(
  service: 'https' | 'sip-tls',
  target: HostPort,
  obs: TlsObservation,
  now: number,
  expiryWarningDays: number = DIAGNOSTIC_DEFAULTS.certExpiryWarningDays,
): Judgement {
  const what = `TLS handshake with ${formatHostPort(target)}`;
  if (obs.outcome !== 'handshake') {
    return {
      verdict: 'failed',
      summary: `${what} failed: ${failureReason(obs, target, 'tcp')}`,
      details: failureDetails(obs),
    };
  }
  const cert = obs.certificate;
  const details: Record<string, unknown> = {
    protocol: obs.protocol,
    address: obs.address,
    authorized: obs.authorized,
    ...(obs.authorizationError ? { authorizationError: obs.authorizationError } : {}),
    ...(obs.identityError ? { identityError: obs.identityError } : {}),
    ...(cert
      ? {
          subject: cert.subject,
          issuer: cert.issuer,
          altNames: cert.altNames,
          validTo: new Date(cert.validTo).toISOString(),
        }
      : {}),
  };
  const issuer = cert?.issuer ? ` (issuer '${cert.issuer}')` : '';
  if (!obs.authorized) {
    const code = obs.authorizationError ?? 'CERT_UNTRUSTED';
    let reason = CERT_REASONS[code] ?? `rejected (${code})`;
    if (code === 'CERT_HAS_EXPIRED' && cert) reason = `expired on ${isoDay(cert.validTo)}`;
    if (code === 'CERT_NOT_YET_VALID' && cert)
      reason = `not valid before ${isoDay(cert.validFrom)} (is the clock right?)`;
    return {
      verdict: 'failed',
      summary: `${what} failed: certificate not trusted: ${reason}${issuer}`,
      details,
    };
  }
  if (obs.identityError) {
    const names = cert?.altNames
      ? `it names ${cert.altNames.replace(/(DNS|IP Address):/g, '')}`
      : 'it names other hosts';
    return {
      verdict: 'failed',
      summary: `${what} failed: the certificate is not valid for ${target.host} (${names})`,
      details,
    };
  }
  const kind = service === 'https' ? 'HTTPS' : 'SIP-TLS';
  if (cert && cert.validTo - now < expiryWarningDays * 24 * 3600 * 1000) {
    return {
      verdict: 'warning',
      summary: `${what} ok (${obs.protocol}), but the ${kind} certificate expires on ${isoDay(cert.validTo)}${issuer}`,
      details,
    };
  }
  const until = cert ? `, certificate valid until ${isoDay(cert.validTo)}` : '';
  return { verdict: 'ok', summary: `${what} ok (${obs.protocol}${until})`, details };
}

/** STUN: a Binding response with a mapped address → ok naming it; anything else → failed. */
export function judgeStun(target: HostPort, obs: StunObservation): Judgement {
  const where = formatHostPort(target);
  if (obs.outcome === 'mapped') {
    const mapped = formatHostPort({ host: obs.mapped.address, port: obs.mapped.port });
    const local = formatHostPort({ host: obs.local.address, port: obs.local.port });
    const nat = mapped === local ? 'no NAT' : `NAT: local ${local}`;
    return {
      verdict: 'ok',
      summary: `mapped address ${mapped} from ${where} (${nat})`,
      details: {
        mapped,
        local,
        attribute: obs.attribute,
        behindNat: mapped !== local,
        roundTripMs: round3(obs.roundTripMs),
      },
    };
  }
  if (obs.outcome === 'error-response') {
    return {
      verdict: 'failed',
      summary: `STUN binding request to ${where} failed: the server answered error ${obs.code}${obs.reason ? ` ${obs.reason}` : ''}`,
      details: { code: obs.code, reason: obs.reason },
    };
  }
  return {
    verdict: 'failed',
    summary: `STUN binding request to ${where} failed: ${failureReason(obs, target, 'udp')}`,
    details: failureDetails(obs),
  };
}

/** A check that cannot run: no target configured (warning), or the target is not a host (failed). */
export function judgeUnplanned(
  check: Extract<PlannedCheck, { unconfigured: string } | { invalid: string }>,
): Judgement {
  if ('unconfigured' in check) {
    return { verdict: 'warning', summary: `not checked: ${check.unconfigured}` };
  }
  return { verdict: 'failed', summary: `not checked: ${check.invalid}`, details: { value: check.text } };
}

/** A check whose probe threw: a failed verdict naming the error, never a crash of the run. */
export function judgeCrash(name: DiagnosticName, error: unknown): Judgement {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | null)?.code;
  return {
    verdict: 'failed',
    summary: `the ${name} check could not run: ${message}`,
    details: { error: message, ...(typeof code === 'string' ? { code } : {}) },
  };
}

/** The report of a run: ok when nothing failed. */
export function makeReport(at: number, results: DiagnosticResult[]): DiagnosticsReport {
  return { at: new Date(at).toISOString(), results, ok: results.every((r) => r.verdict !== 'failed') };
}

/** Lines for the CLI, the tty1 screen and the log: a headline, then one line per check. */
export function formatDiagnostics(
  report: DiagnosticsReport,
  /** How the report's time is written: ISO in the log, as every other time on a person's screen. */
  time: (iso: string) => string = (iso) => iso,
): string[] {
  const failed = report.results.filter((r) => r.verdict === 'failed').length;
  const warnings = report.results.filter((r) => r.verdict === 'warning').length;
  const counts = [
    failed ? `${failed} failed` : '',
    warnings ? `${warnings} warning${warnings > 1 ? 's' : ''}` : '',
  ]
    .filter(Boolean)
    .join(', ');
  const head = `diagnostics ${time(report.at)}: ${counts || 'all ok'}`;
  const label: Record<Verdict, string> = { ok: 'ok  ', warning: 'WARN', failed: 'FAIL' };
  const width = Math.max(...report.results.map((r) => r.name.length), 0);
  return [head, ...report.results.map((r) => `  ${label[r.verdict]} ${r.name.padEnd(width)}  ${r.summary}`)];
}
