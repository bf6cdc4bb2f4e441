import { promises as fs } from 'node:fs';

/** Parent of every process (from /proc/<pid>/stat); processes that vanish while read are left out. */
async function parents(): Promise<Map<number, number>> {
  const map = new Map<number, number>();
  for (const name of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await fs.readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    // The command name in parentheses may hold spaces and parentheses: read after the last ')'.
    const rest = stat?.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(rest?.[1]);
    if (Number.isInteger(ppid)) map.set(Number(name), ppid);
  }
  return map;
}

/** Every descendant of `root` (children, their children, …), root excluded. */
export async function descendants(root: number): Promise<number[]> {
  const byParent = new Map<number, number[]>();
  for (const [pid, ppid] of await parents()) byParent.set(ppid, [...(byParent.get(ppid) ?? []), pid]);
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const child of byParent.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` runs (a zombie — exited, not yet reaped — does not). */
export async function running(pid: number): Promise<boolean> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return false;
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/**
 * Ends `root` and everything it started, however they detached (sshd's per-connection processes
 * call setsid, so neither a process-group signal nor the listener's own exit reaches them): the
 * tree is frozen with SIGSTOP until no new process appears (a frozen process cannot fork), every
 * descendant is killed, then `root` gets SIGTERM (so it can remove its PID file) and SIGKILL if
 * it is still there after `graceMs`. Only for a tree this program started.
 */
export async function endProcessTree(root: number, graceMs = 3000): Promise<void> {
  const frozen = new Set<number>();
  if (signal(root, 'SIGSTOP')) frozen.add(root);
  for (let round = 0; round < 50; round++) {
    const fresh = (await descendants(root)).filter((p) => !frozen.has(p));
    if (fresh.length === 0) break;
    for (const pid of fresh) if (signal(pid, 'SIGSTOP')) frozen.add(pid);
  }
  for (const pid of frozen) if (pid !== root) signal(pid, 'SIGKILL');
  signal(root, 'SIGTERM');
  signal(root, 'SIGCONT');
  for (let waited = 0; waited < graceMs && (await running(root)); waited += 50)
    await new Promise((r) => setTimeout(r, 50));
  if (await running(root)) signal(root, 'SIGKILL');
}
