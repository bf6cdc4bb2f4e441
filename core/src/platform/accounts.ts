import { promises as fs } from 'node:fs';

/**
 * The id of a group in the system's group database (`/etc/group`: the image's groups are static,
 * made when the root filesystem is built), or undefined when there is no such group — as on a
 * development machine, where the simulator's processes all run as one user.
 */
export async function groupId(name: string, file = '/etc/group'): Promise<number | undefined> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}
