/**
 * Runs the startup diagnostics: every planned check with its probe, a few at a time, each judged
 * by the pure verdict rules. Never throws: a probe that throws, or that outlives its limit, is a
 * failed verdict naming what happened, so one broken check cannot hide the others.
 */
import {
  DIAGNOSTIC_DEFAULTS,
  type DiagnosticResult,
  type DiagnosticsConfig,
  type DiagnosticsReport,
  formatDiagnostics,
  formatHostPort,
  type Judgement,
  judgeCrash,
  judgeDns,
  judgeNtp,
  judgeStun,
  judgeTls,
  judgeUnplanned,
  makeReport,
  type PlannedCheck,
  planChecks,
} from './checks.js';
import { probeDns, probeNtp, probeStun, probeTls } from './probes.js';

export { formatDiagnostics };

/** The probes, replaceable in tests of the runner itself. */
export interface Probes {
  dns: typeof probeDns;
  ntp: typeof probeNtp;
  tls: typeof probeTls;
  stun: typeof probeStun;
}

export interface DiagnosticsDeps {
  /** Milliseconds since the Unix epoch: the clock whose offset NTP measures, and durations. */
  now(): number;
  probes?: Partial<Probes>;
  /** Checks running at once; the default runs the two UDP and two TLS checks side by side. */
  concurrency?: number;
}

const DEFAULT_CONCURRENCY = 3;
/** Beyond its own limit a probe gets this much grace before the runner gives up on it. */
const GRACE_MS = 1000;

function targetOf(check: PlannedCheck): string {
  if ('target' in check) return formatHostPort(check.target);
  if ('servers' in check) return check.servers.length > 0 ? check.servers.join(', ') : 'system resolver';
  return '';
}

async function judge(
  check: PlannedCheck,
  config: DiagnosticsConfig,
  deps: DiagnosticsDeps,
): Promise<Judgement> {
  const probes: Probes = { dns: probeDns, ntp: probeNtp, tls: probeTls, stun: probeStun, ...deps.probes };
  const timeoutMs = config.timeoutMs ?? DIAGNOSTIC_DEFAULTS.timeoutMs;
  const options = { dnsServers: config.dnsServers, timeoutMs };
  if ('unconfigured' in check || 'invalid' in check) return judgeUnplanned(check);
  if (check.name === 'dns') return judgeDns(await probes.dns(check.host, check.servers, timeoutMs));
  const { target } = check;
  switch (check.name) {
    case 'ntp':
      return judgeNtp(
        target,
        await probes.ntp(target, { ...options, now: deps.now }),
        config.maxClockOffsetMs,
      );
    case 'https':
    case 'sip-tls': {
      const obs = await probes.tls(target, { ...options, ...(config.ca ? { ca: config.ca } : {}) });
      return judgeTls(check.name, target, obs, deps.now(), config.certExpiryWarningDays);
    }
    case 'stun-3478':
    case 'stun-3479':
      return judgeStun(target, await probes.stun(target, options));
  }
}

/** `promise`, or `onLate()` when it has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, onLate: () => T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onLate()), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function runOne(
  check: PlannedCheck,
  config: DiagnosticsConfig,
  deps: DiagnosticsDeps,
): Promise<DiagnosticResult> {
  const started = deps.now();
  const limit = (config.timeoutMs ?? DIAGNOSTIC_DEFAULTS.timeoutMs) + GRACE_MS;
  let judgement: Judgement;
  try {
    judgement = await within(judge(check, config, deps), limit, () =>
      judgeCrash(check.name, new Error(`no result within ${limit} ms`)),
    );
  } catch (e) {
    judgement = judgeCrash(check.name, e);
  }
  return {
    name: check.name,
    target: targetOf(check),
    ...judgement,
    durationMs: Math.max(0, Math.round(deps.now() - started)),
  };
}

/**
 * Runs every check (at most `deps.concurrency` at once) and returns the report in the checks'
 * fixed order. Takes about one time limit per wave when everything times out.
 */
export async function runDiagnostics(
  config: DiagnosticsConfig,
  deps: DiagnosticsDeps,
): Promise<DiagnosticsReport> {
  const at = deps.now();
  let checks: PlannedCheck[];
  try {
    checks = planChecks(config);
  } catch (e) {
    return makeReport(at, [{ name: 'dns', target: '', ...judgeCrash('dns', e), durationMs: 0 }]);
  }
  const results: DiagnosticResult[] = new Array(checks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < checks.length) {
      const i = next++;
      results[i] = await runOne(checks[i]!, config, deps);
    }
  };
  const width = Math.max(1, Math.min(deps.concurrency ?? DEFAULT_CONCURRENCY, checks.length));
  await Promise.all(Array.from({ length: width }, worker));
  return makeReport(at, results);
}
