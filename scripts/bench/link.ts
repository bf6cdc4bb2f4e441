/**
 * A customer's link for `make bench`: the mirror is reached through a shaped veth pair, its far end
 * in a network namespace of the bench's own (`clgw-bench-<pid>`), where the agent, RAUC's service
 * and casync run. The mirror stays in the bench process, bound to the host end's address, so its
 * byte counters keep working; only that veth carries the traffic.
 *
 *   ip netns add clgw-bench-PID
 *   ip link add cbhPID type veth peer name cbnPID; ip link set cbnPID netns clgw-bench-PID
 *   host end 10.A.B.1/30, namespace end 10.A.B.2/30 (A, B from the pid), lo up in the namespace
 *   tc qdisc add dev cbhPID root tbf rate RATE burst 128kb latency 50ms        (mirror → appliance)
 *   ip netns exec clgw-bench-PID iptables -A INPUT -m statistic --mode random
 *     --probability LOSS -j DROP        (loss on arrival, in the namespace's own netfilter tables)
 *
 * No added delay: this machine's kernel is built without sch_netem (only tbf, htb and fifo
 * qdiscs), so the round trip is the veth's own (well under 1 ms). `shape.rttMs` is therefore
 * always 0 here and the report says so; a kernel with netem would take `netem delay` per end.
 *
 * The mirror's certificate names `download.clgw.test` (the test domain, scripts/lib/mirror-pki.ts),
 * so inside the namespace that name resolves to the host end: `ip netns exec` bind-mounts
 * /etc/netns/<namespace>/hosts over /etc/hosts for exactly the processes it starts. Everything the
 * link made (namespace, veth pair, that directory) is removed by `close`, also on failure.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { execFile } from '@clgw/core/platform/exec.js';
import { BenchBroken } from './common.js';

/** The link's shape: rate in Mbit/s (10^6 bit/s), loss in % (mirror → appliance), added RTT in ms. */
export interface LinkShape {
  mbit: number;
  lossPct: number;
  /** Round-trip time added to the veth's own: 0, see above. */
  rttMs: number;
}

export interface Link {
  /** The namespace the appliance side runs in. */
  netns: string;
  /** The address the mirror binds to (host end of the veth pair). */
  mirrorHost: string;
  /** The namespace end's address: where the bench's stand-in voice stream reaches the appliance. */
  applianceHost: string;
  /** The name the appliance side uses for the mirror (resolves to mirrorHost in the namespace). */
  mirrorName: string;
  shape: LinkShape;
  /** Takes the link down (both ends lose carrier) for `ms`, then up again. */
  outage(ms: number): Promise<void>;
  /**
   * Bytes the appliance's end has received so far (its interface's rx counter: IP packets with
   * their headers, what crossed the link — not what the mirror wrote into a socket that then died).
   */
  received(): Promise<number>;
  /**
   * Packets the link has dropped so far, of every flow: by the shaper (tbf's queue full, mirror →
   * appliance) and by the random-loss rule. What tells a queue that overflowed from the loss the
   * link is made with.
   */
  drops(): Promise<{ queue: number; loss: number }>;
  close(): Promise<void>;
}

const MIRROR_NAME = 'download.clgw.test';

/** Links not yet closed, so an interrupted bench can still remove what it made (closeAllLinks). */
const open = new Set<Link>();

/** Closes every link still open (the bench is failing or interrupted). */
export async function closeAllLinks(): Promise<void> {
  for (const link of [...open]) await link.close();
}

const ip = (args: string[]) => execFile('ip', args, { timeoutMs: 30_000 });
const tc = (args: string[]) => execFile('tc', args, { timeoutMs: 30_000 });

/** Creates the namespace, the veth pair and the shaping; needs root. */
export async function createLink(want: { mbit: number; lossPct: number }): Promise<Link> {
  const shape: LinkShape = { ...want, rttMs: 0 };
  const pid = process.pid;
  const netns = `clgw-bench-${pid}`;
  const host = `cbh${pid}`;
  const ns = `cbn${pid}`;
  // A /30 of 10.200.0.0/13 picked by the pid, so two benches never share addresses.
  const a = 200 + ((pid >> 14) & 7);
  const b = (pid >> 6) & 255;
  const c = (pid & 63) * 4;
  const mirrorHost = `10.${a}.${b}.${c + 1}`;
  const nsAddr = `10.${a}.${b}.${c + 2}`;
  const etcDir = path.join('/etc/netns', netns);

  const close = async () => {
    await ip(['link', 'del', host]).catch(() => undefined);
    await ip(['netns', 'del', netns]).catch(() => undefined);
    await fs.rm(etcDir, { recursive: true, force: true });
    // /etc/netns itself too once empty (ip netns exec reads it; the bench made it if it was absent).
    await fs.rmdir(path.dirname(etcDir)).catch(() => undefined);
  };
  try {
    await ip(['netns', 'add', netns]);
    await fs.mkdir(etcDir, { recursive: true });
    await fs.writeFile(
      path.join(etcDir, 'hosts'),
      `127.0.0.1 localhost\n::1 localhost\n${mirrorHost} ${MIRROR_NAME}\n`,
    );
    await ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', ns]);
    await ip(['link', 'set', ns, 'netns', netns]);
    await ip(['addr', 'add', `${mirrorHost}/30`, 'dev', host]);
    await ip(['link', 'set', host, 'up']);
    await ip(['-n', netns, 'addr', 'add', `${nsAddr}/30`, 'dev', ns]);
    await ip(['-n', netns, 'link', 'set', ns, 'up']);
    await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
    // The burst holds two 64 KiB GSO packets (a veth hands tbf whole ones); 50 ms of queue.
    await tc([
      'qdisc',
      'add',
      'dev',
      host,
      'root',
      'tbf',
      'rate',
      `${shape.mbit}mbit`,
      'burst',
      '128kb',
      'latency',
      '50ms',
    ]);
    if (shape.lossPct > 0)
      await ip([
        'netns',
        'exec',
        netns,
        'iptables',
        '-A',
        'INPUT',
        '-m',
        'statistic',
        '--mode',
        'random',
        '--probability',
        String(shape.lossPct / 100),
        '-j',
        'DROP',
      ]);
  } catch (e) {
    await close();
    throw new BenchBroken(
      `cannot build the shaped link (namespace ${netns}): ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  const link: Link = {
    netns,
    mirrorHost,
    applianceHost: nsAddr,
    mirrorName: MIRROR_NAME,
    shape,
    async outage(ms: number) {
      await ip(['link', 'set', host, 'down']);
      try {
        await new Promise((r) => setTimeout(r, ms));
      } finally {
        await ip(['link', 'set', host, 'up']);
      }
    },
    async received() {
      const { stdout } = await ip(['-n', netns, '-j', '-s', 'link', 'show', 'dev', ns]);
      const [dev] = JSON.parse(stdout) as { stats64?: { rx?: { bytes?: number } } }[];
      const bytes = dev?.stats64?.rx?.bytes;
      if (typeof bytes !== 'number') throw new Error(`ip -s link show ${ns} in ${netns} gave no rx bytes`);
      return bytes;
    },
    async drops() {
      const { stdout } = await tc(['-s', '-j', 'qdisc', 'show', 'dev', host]);
      const qdiscs = JSON.parse(stdout) as { kind?: string; drops?: number }[];
      const queue = qdiscs.find((q) => q.kind === 'tbf')?.drops;
      if (typeof queue !== 'number') throw new Error(`tc -s qdisc show dev ${host} gave no tbf drops`);
      if (shape.lossPct === 0) return { queue, loss: 0 };
      // `-x`: exact counts; the rule's line starts with its packet count.
      const rules = await ip(['netns', 'exec', netns, 'iptables', '-n', '-v', '-x', '-L', 'INPUT']);
      const rule = rules.stdout.split('\n').find((l) => /\bDROP\b/.test(l) && /statistic/.test(l));
      const loss = Number(rule?.trim().split(/\s+/)[0]);
      if (!Number.isInteger(loss)) throw new Error(`iptables -L INPUT in ${netns} shows no loss rule`);
      return { queue, loss };
    },
    async close() {
      open.delete(link);
      await close();
    },
  };
  open.add(link);
  return link;
}

/** The base URL the appliance side uses for a mirror listening on the link's host end. */
export function linkUrl(link: Link, port: number): string {
  return `https://${link.mirrorName}:${port}`;
}
