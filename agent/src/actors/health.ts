import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { ClgwError, isClgwError } from '@clgw/core/errors.js';
import { execFile } from '@clgw/core/platform/exec.js';
import type { SlotName } from '@clgw/core/platform/paths.js';
import { readRunningRelease } from '@clgw/core/system/os-release.js';
import type { Deps } from '../deps.js';
import { readBootedSlot } from '../slot/booted.js';

export interface HealthExpectation {
  slot: SlotName;
  /** The gateway OS version the slot must be running (omitted: whatever it declares). */
  version?: string;
  /** The OS patch level the release declared in compat.yaml (omitted: not checked). */
  patchLevel?: string | undefined;
}

export interface HealthReport {
  slot: SlotName;
  version: string;
  checks: { name: string; ok: boolean; detail: string }[];
}

function fail(check: string, message: string, details: Record<string, unknown> = {}): never {
  throw new ClgwError('HEALTH_CHECK_FAILED', `health check "${check}" failed: ${message}`, {
    details: { check, ...details },
  });
}

/**
 * The health check after a boot: the bootloader started the expected slot, that slot runs the
 * expected gateway OS version, the data partition takes a durable write, and every health hook
 * the release ships (`/usr/lib/clgw/health.d/*`, run in name order with a deadline) exits 0.
 * Throws HEALTH_CHECK_FAILED naming the first check that failed.
 */
export async function checkHealth(deps: Deps, expect: HealthExpectation): Promise<HealthReport> {
  const checks: HealthReport['checks'] = [];

  const booted = await readBootedSlot(deps.paths);
  if (booted !== expect.slot) fail('booted slot', `expected slot ${expect.slot}, booted slot ${booted}`);
  checks.push({ name: 'booted slot', ok: true, detail: booted });

  let running: Awaited<ReturnType<typeof readRunningRelease>>;
  try {
    running = await readRunningRelease(deps.paths.osRelease);
  } catch (e) {
    fail('os-release', isClgwError(e) ? e.message : String(e));
  }
  const { version, patchLevel } = running;
  if (expect.version && version !== expect.version) {
    fail('os-release', `slot ${booted} runs gateway OS ${version}, expected ${expect.version}`);
  }
  // A release whose image says other patches than its signed compat.yaml promised is not it.
  if (expect.patchLevel && patchLevel !== expect.patchLevel) {
    fail(
      'os-release',
      `slot ${booted} declares OS patch level ${patchLevel ?? '(none)'}, compat.yaml promised ${expect.patchLevel}`,
    );
  }
  checks.push({
    name: 'os-release',
    ok: true,
    detail: patchLevel ? `${version}, patch level ${patchLevel}` : version,
  });

  const probe = path.join(deps.paths.dataDir, '.health-probe');
  try {
    await fs.mkdir(deps.paths.dataDir, { recursive: true });
    const stamp = String(deps.clock.now());
    const h = await fs.open(probe, 'w');
    await h.writeFile(stamp);
    await h.sync();
    await h.close();
    if ((await fs.readFile(probe, 'utf8')) !== stamp) fail('data partition', `${probe} did not read back`);
    await fs.rm(probe);
  } catch (e) {
    if (isClgwError(e)) throw e;
    fail('data partition', `cannot write ${probe}: ${(e as Error).message}`);
  }
  checks.push({ name: 'data partition', ok: true, detail: deps.paths.dataDir });

  for (const hook of await listHooks(deps.paths.healthHooks)) {
    const name = path.basename(hook);
    try {
      await execFile(hook, [], {
        timeoutMs: deps.config.healthHookTimeoutMs,
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', CLGW_ROOT: deps.paths.root, CLGW_SLOT: booted },
      });
    } catch (e) {
      const d = isClgwError(e) ? e.details : {};
      const said = String(d.stderr || '')
        .split('\n')
        .filter(Boolean)
        .pop();
      fail(`hook ${name}`, said ?? (e as Error).message, { hook, exitCode: d.exitCode });
    }
    checks.push({ name: `hook ${name}`, ok: true, detail: 'exit 0' });
  }

  deps.log.info('health check passed', { slot: booted, version, checks: checks.map((c) => c.name) });
  return { slot: booted, version, checks };
}

/** Executable regular files of the hook directory, in name order; none when it does not exist. */
async function listHooks(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const hooks: string[] = [];
  for (const n of names) {
    const p = path.join(dir, n);
    const st = await fs.stat(p);
    if (!st.isFile() || n.startsWith('.')) continue;
    try {
      await fs.access(p, constants.X_OK);
      hooks.push(p);
    } catch {
      // A hook that is not executable is a packaging fault; running it would fail anyway.
      fail(`hook ${n}`, `${p} is not executable`);
    }
  }
  return hooks;
}
