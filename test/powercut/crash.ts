/**
 * The test's side of `core/src/platform/crashpoint.ts`: arming the power-cut points of one
 * appliance (a directory named by `CLGW_CRASH_DIR` in the environment of its processes), reading
 * where they are, and cutting the power of a process tree.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** How the points are armed: count them, freeze at each one, or freeze at the n-th. */
export type ArmSpec = 'count' | 'step' | number;

/** One counted crash point: its number since arming, the process that reached it, its label. */
export interface TracePoint {
  n: number;
  pid: number;
  label: string;
}

export class CrashDir {
  constructor(readonly dir: string) {}

  /** The environment that makes the appliance's processes report to this directory. */
  env(): NodeJS.ProcessEnv {
    return { CLGW_CRASH_DIR: this.dir };
  }

  async arm(spec: ArmSpec): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    await fs.writeFile(path.join(this.dir, 'armed'), String(spec));
  }

  async disarm(): Promise<void> {
    await fs.rm(path.join(this.dir, 'armed'), { force: true });
  }

  async armed(): Promise<boolean> {
    return fs.stat(path.join(this.dir, 'armed')).then(
      () => true,
      () => false,
    );
  }

  /** Points counted since the directory was first armed. */
  async count(): Promise<number> {
    const text = await fs.readFile(path.join(this.dir, 'count'), 'utf8').catch(() => '0');
    return Number.parseInt(text, 10) || 0;
  }

  async trace(): Promise<TracePoint[]> {
    const text = await fs.readFile(path.join(this.dir, 'trace'), 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const [n, pid, ...label] = line.split(' ');
        return { n: Number(n), pid: Number(pid), label: label.join(' ') };
      });
  }

  /** The n-th point, once some process has reached it. */
  async point(n: number): Promise<TracePoint | undefined> {
    if ((await this.count()) < n) return undefined;
    return (await this.trace()).find((p) => p.n === n);
  }
}

/** The process's state letter from /proc (T = stopped, Z = zombie), or undefined once it is gone. */
export async function processState(pid: number): Promise<string | undefined> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}

/** Waits until `pid` is stopped (it froze itself at a crash point) or gone; false when it is gone. */
export async function waitFrozen(pid: number, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    const state = await processState(pid);
    if (state === undefined || state === 'Z') return false;
    if (state === 'T' || state === 't') return true;
    if (Date.now() > end) throw new Error(`process ${pid} did not stop at its crash point within ${ms} ms`);
    await sleep(1);
  }
}

/** Every descendant of `pid` (health hooks the agent runs, say), from /proc's children lists. */
export async function descendants(pid: number): Promise<number[]> {
  const out: number[] = [];
  const tasks = await fs.readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tasks) {
    const text = await fs.readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    for (const child of text.split(' ').filter(Boolean).map(Number)) {
      out.push(child, ...(await descendants(child)));
    }
  }
  return out;
}

/**
 * The power goes: SIGKILL for `pid` and everything it started. The process is frozen first so
 * that it cannot start anything more while its children are listed.
 */
export async function killTree(pid: number): Promise<void> {
  signal(pid, 'SIGSTOP');
  const all = [pid, ...(await descendants(pid))];
  for (const p of all) signal(p, 'SIGKILL');
}

export function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
