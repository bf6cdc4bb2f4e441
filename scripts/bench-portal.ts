/**
 * `make bench-portal`: the local portal under a flood from the LAN while an update runs (issue
 * #16). A simulated appliance run by the boot emulator — the real agent and the real portal, each
 * its own process, as on the box — downloads a release from a paced loopback mirror; meanwhile
 * autocannon (two processes of its own) holds BENCH_PORTAL_CONNECTIONS connections (default 2000:
 * three quarters on `GET /api/status`, a quarter on `GET /api/events`) for BENCH_PORTAL_SECONDS
 * (default 60). Measured: requests per second, p50/p99 latency, answers by kind (2xx, refused,
 * errors and timeouts: connections past the portal's cap are closed as they arrive), the agent's
 * and the portal's peak RSS (sampled from /proc every 200 ms), and whether the update still
 * completes with the agent never restarted but for the update's own reboot.
 *
 * Prints a table and, as its last line, one JSON object. Figures are reported, never judged
 * against a time: this is a benchmark, not a test. Inputs in .cache/bench-portal; every process
 * it starts, it stops.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { AgentClient } from '../agent/src/api/client.js';
import type { Status } from '../agent/src/status.js';
import { buildRelease, generateDevKeys } from '../image/src/release/index.js';
import { envInt, REPO, say } from './bench/common.js';
import { startMirror } from './lib/mirror.js';
import { createAppliance } from './sim/appliance.js';
import { runAppliance } from './sim/boot-emulator.js';
import { buildReleaseImages } from './sim/images.js';

const WORK = path.join(REPO, '.cache/bench-portal');
const AUTOCANNON = path.join(REPO, 'node_modules/autocannon/autocannon.js');

interface Cannon {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number; max: number };
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** One autocannon process on `url` with `connections` for `seconds`; its JSON report. */
function cannon(url: string, connections: number, seconds: number, timeoutS: number): Promise<Cannon> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [AUTOCANNON, '--json', '-c', String(connections), '-d', String(seconds), '-t', String(timeoutS), url],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('exit', (code) => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as Cannon);
      } catch {
        reject(new Error(`autocannon on ${url} exited ${code}: ${err.trim().slice(-500)}`));
      }
    });
  });
}

/**
 * Resident memory of a process in KiB: all of it (VmRSS) and its anonymous part (RssAnon: heap,
 * buffers — what grows under load; the rest is node's binary, shared), or undefined once gone.
 */
async function rssKiB(pid: number | undefined): Promise<{ rss: number; anon: number } | undefined> {
  if (pid === undefined) return undefined;
  const text = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(text);
  const anon = /^RssAnon:\s+(\d+) kB/m.exec(text);
  return rss && anon ? { rss: Number(rss[1]), anon: Number(anon[1]) } : undefined;
}

/** The largest of each figure seen. */
class Peak {
  rss = 0;
  anon = 0;
  add(k: { rss: number; anon: number } | undefined): void {
    if (!k) return;
    this.rss = Math.max(this.rss, k.rss);
    this.anon = Math.max(this.anon, k.anon);
  }
  text(): string {
    return `${(this.rss / 1024).toFixed(1)} MiB (anonymous ${(this.anon / 1024).toFixed(1)} MiB)`;
  }
}

async function main(): Promise<void> {
  const seconds = envInt('BENCH_PORTAL_SECONDS', 60, 5);
  const connections = envInt('BENCH_PORTAL_CONNECTIONS', 2000, 4);
  const eventConnections = Math.max(1, Math.round(connections / 4));
  const statusConnections = connections - eventConnections;
  await fs.mkdir(WORK, { recursive: true });

  // A release big enough, on a mirror slow enough, that the update downloads for about half the
  // flood and then reboots, confirms and commits while the flood goes on.
  const payloadMiB = 32;
  const factory = await buildReleaseImages({ version: '1.0.0', outDir: WORK, payloadMiB });
  const next = await buildReleaseImages({ version: '1.1.0', outDir: WORK, payloadMiB });
  const tree = path.join(WORK, 'mirror');
  await fs.rm(tree, { recursive: true, force: true });
  await fs.mkdir(tree, { recursive: true });
  const rate = Math.round(((payloadMiB + 8) * 1024 * 1024) / (seconds / 2));
  const mirror = await startMirror({ tree, tlsDir: path.join(WORK, 'tls'), rateBytesPerSecond: rate });
  const keys = generateDevKeys({ bits: 2048 });
  await buildRelease({
    tree,
    keys,
    version: '1.1.0',
    platforms: ['physical', 'virtual', 'kvm'],
    boot: next.boot,
    root: next.root,
    minSourceVersion: '1.0.0',
    // Streamed whole: every byte over the paced mirror (an adaptive update would copy most of it).
    chunkIndex: false,
  });
  const root = path.join(WORK, 'appliance');
  await createAppliance({
    root,
    factory,
    platform: 'physical',
    baseUrl: `${mirror.url}/`,
    releaseRootPem: keys.root.certPem,
    mirrorCaPem: mirror.caPem,
    bootSlotMiB: 16,
    rootSlotMiB: payloadMiB + 24,
    config: { updateAtBoot: false },
  });
  const narration: string[] = [];
  const appliance = runAppliance({ root, say: (l) => narration.push(l), maxBoots: 4 });
  const agent = new AgentClient(path.join(root, 'run/clgw/agent.sock'), 10_000);
  const until = async (ok: () => Promise<boolean>, what: string, ms: number) => {
    const end = Date.now() + ms;
    for (;;) {
      if (await ok().catch(() => false)) return;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  try {
    await until(async () => (await agent.status()).state === 'idle', 'the agent', 60_000);
    const portalUrl = (await fs.readFile(path.join(root, 'run/clgw/portal-url'), 'utf8')).trim();
    await until(async () => (await fetch(new URL('/api/status', portalUrl))).ok, 'the portal', 30_000);

    const peakAgent = new Peak();
    const peakPortal = new Peak();
    const idlePortal = await rssKiB(appliance.portalPid());
    const sampler = setInterval(() => {
      void rssKiB(appliance.agentPid()).then((k) => peakAgent.add(k));
      void rssKiB(appliance.portalPid()).then((k) => peakPortal.add(k));
    }, 200);

    say(
      `bench-portal: ${connections} connections (${statusConnections} status, ${eventConnections} events) for ${seconds} s while 1.0.0 -> 1.1.0 downloads at ${(rate / 1e6).toFixed(1)} MB/s`,
    );
    await agent.post('/v1/update', {});
    const started = Date.now();
    const [status, events] = await Promise.all([
      cannon(new URL('/api/status', portalUrl).toString(), statusConnections, seconds, 5),
      cannon(new URL('/api/events', portalUrl).toString(), eventConnections, seconds, 2),
    ]);
    const loadSeconds = (Date.now() - started) / 1000;
    let final: Status | undefined;
    await until(
      async () => {
        final = await agent.status();
        return final.result?.outcome === 'committed' && final.state !== 'checking';
      },
      'the update to commit',
      180_000,
    );
    clearInterval(sampler);
    const committedAfter = (Date.now() - started) / 1000;
    const crashes = narration.filter((l) => /agent exited with|keeps failing/.test(l)).length;
    const reboots = narration.filter((l) => l === 'agent requested a reboot').length;
    const portalRestarts = narration.filter((l) => l.startsWith('portal exited')).length;

    const row = (name: string, c: Cannon) =>
      `${name.padEnd(8)} ${c.requests.average.toFixed(0).padStart(8)} ${String(c.latency.p50).padStart(7)} ${String(c.latency.p99).padStart(7)} ${String(c['2xx']).padStart(8)} ${String(c.non2xx).padStart(8)} ${String(c.errors).padStart(8)} ${String(c.timeouts).padStart(8)}`;
    say('');
    say('route       req/s  p50 ms  p99 ms      2xx  refused   errors timeouts');
    say(row('status', status));
    say(row('events', events));
    say('');
    say(`agent peak RSS    ${peakAgent.text()}`);
    say(
      `portal peak RSS   ${peakPortal.text()}; idle before the flood ${idlePortal ? `${(idlePortal.rss / 1024).toFixed(1)} MiB (anonymous ${(idlePortal.anon / 1024).toFixed(1)} MiB)` : 'unknown'}`,
    );
    say(
      `update            committed ${final!.result!.version} ${committedAfter.toFixed(0)} s after it started (flood ${loadSeconds.toFixed(0)} s)`,
    );
    say(`agent restarts    ${crashes} crashes, ${reboots} reboot(s) the update asked for`);
    say(`portal restarts   ${portalRestarts}`);
    say(
      'refused: 503, event streams past the cap of 32; errors: connections past the portal cap (256), closed',
    );
    say(
      'as they arrive; timeouts: mostly the event streams the portal holds open (autocannon waits for an end)',
    );
    const json = {
      connections,
      seconds,
      statusRps: Math.round(status.requests.average),
      statusP50Ms: status.latency.p50,
      statusP99Ms: status.latency.p99,
      status2xx: status['2xx'],
      statusNon2xx: status.non2xx,
      statusErrors: status.errors,
      statusTimeouts: status.timeouts,
      eventsRps: Math.round(events.requests.average),
      eventsP99Ms: events.latency.p99,
      events2xx: events['2xx'],
      eventsNon2xx: events.non2xx,
      eventsErrors: events.errors,
      eventsTimeouts: events.timeouts,
      agentPeakRssMiB: Number((peakAgent.rss / 1024).toFixed(1)),
      agentPeakAnonMiB: Number((peakAgent.anon / 1024).toFixed(1)),
      portalPeakRssMiB: Number((peakPortal.rss / 1024).toFixed(1)),
      portalPeakAnonMiB: Number((peakPortal.anon / 1024).toFixed(1)),
      portalIdleRssMiB: idlePortal ? Number((idlePortal.rss / 1024).toFixed(1)) : null,
      updateCommitted: final?.result?.outcome === 'committed',
      updateSeconds: Number(committedAfter.toFixed(1)),
      agentCrashes: crashes,
      portalRestarts,
    };
    say(JSON.stringify(json));
  } finally {
    await appliance.stop();
    await mirror.close();
    await fs.rm(root, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench-portal: ${(e as Error).message}\n`);
  process.exit(1);
});
