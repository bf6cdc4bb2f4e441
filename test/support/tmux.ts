/**
 * `clgw-console` in a private tmux server (its own socket, so a test never touches anyone else's
 * sessions): 80x25, TERM=linux as on the VGA console, keys sent by name, the screen read back as
 * text.
 */
import { execFile as execFileCb } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO, until } from './appliance.js';

const execFile = promisify(execFileCb);
const BIN = path.join(REPO, 'console-tui/bin/clgw-console.js');

export const tmuxPath = ['/usr/bin/tmux', '/bin/tmux'].find((p) => existsSync(p));

export class Tmux {
  private readonly socket: string;
  private readonly conf: string;

  /** `name` tells this test's server apart from other tests' on the same machine. */
  constructor(
    name: string,
    private readonly shots: string,
  ) {
    this.socket = `clgw-${name}-${process.pid}`;
    this.conf = path.join(os.tmpdir(), `${this.socket}.tmux.conf`);
  }

  private run(args: string[]): Promise<string> {
    return execFile(tmuxPath ?? 'tmux', ['-L', this.socket, '-f', this.conf, ...args]).then((r) => r.stdout);
  }

  /** Starts `clgw-console <which>` in a detached 80x25 session named after it. */
  async start(which: 'home' | 'menu', root: string): Promise<void> {
    // No status line (the pane is the whole 80x25), and a crashed console stays visible.
    await fs.writeFile(this.conf, 'set -g status off\nset -g remain-on-exit on\n');
    await this.run([
      'new-session',
      '-d',
      '-s',
      which,
      '-x',
      '80',
      '-y',
      '25',
      '-e',
      'TERM=linux',
      '--',
      'env',
      'TERM=linux',
      `CLGW_ROOT=${root}`,
      process.execPath,
      BIN,
      which,
    ]);
  }

  /** Keys by tmux name (`Enter`, `Down`, `Escape`); `text:` sends the rest literally. */
  async keys(session: string, ...keys: string[]): Promise<void> {
    for (const k of keys) {
      if (k.startsWith('text:')) await this.run(['send-keys', '-t', session, '-l', k.slice(5)]);
      else await this.run(['send-keys', '-t', session, k]);
      // blessed starts reading a text box on the next tick: give each key time to land.
      await new Promise((r) => setTimeout(r, 120));
    }
  }

  capture(session: string): Promise<string> {
    return this.run(['capture-pane', '-p', '-t', session]);
  }

  /** Waits until the screen shows `text`; returns the screen. */
  async waitFor(session: string, text: string | RegExp, ms = 30_000): Promise<string> {
    let last = '';
    try {
      return await until(
        async () => {
          last = await this.capture(session);
          return (typeof text === 'string' ? last.includes(text) : text.test(last)) ? last : undefined;
        },
        `"${String(text)}" on the ${session} screen`,
        ms,
      );
    } catch (e) {
      throw new Error(`${(e as Error).message}; the screen shows:\n${last}`);
    }
  }

  /** Saves the screen's text as `<shots>/<name>.txt` and returns it. */
  async save(session: string, name: string): Promise<string> {
    const text = await this.capture(session);
    await fs.mkdir(this.shots, { recursive: true });
    await fs.writeFile(path.join(this.shots, `${name}.txt`), text);
    return text;
  }

  async close(): Promise<void> {
    await this.run(['kill-server']).catch(() => undefined);
    await fs.rm(this.conf, { force: true });
    // kill-server leaves its socket file behind.
    const dir = path.join(process.env.TMUX_TMPDIR ?? '/tmp', `tmux-${process.getuid?.() ?? 0}`);
    await fs.rm(path.join(dir, this.socket), { force: true });
  }
}
