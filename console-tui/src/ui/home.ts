/**
 * tty1: the home screen. Asks the agent every `refreshMs` and redraws; an unreachable agent is
 * said on screen and asked again at the next tick. The bottom row says how to reach the menu;
 * what does not fit above it is paged with PgDn/PgUp (or the arrow keys), never cut.
 */
import type { PresenceView } from '@clgw/agent/presence/presence.js';
import { sshBanner, sshSupportLine } from '@clgw/agent/ssh/view.js';
import type { Status } from '@clgw/agent/status.js';
import blessed from 'blessed';
import { agentAwayDetail } from '../view/agent.js';
import { homeLines, MENU_HINT } from '../view/home.js';
import type { ConsoleDeps } from './deps.js';

export class HomeScreen {
  private readonly body: blessed.Widgets.BoxElement;
  private readonly footer: blessed.Widgets.BoxElement;
  private timer: NodeJS.Timeout | undefined;
  private status: Status | null = null;
  private presence: PresenceView | null = null;
  private unreachable: string | null = null;
  /** The first line shown (paging). */
  private top = 0;
  private lines: string[] = [];

  constructor(
    private readonly screen: blessed.Widgets.Screen,
    private readonly deps: ConsoleDeps,
  ) {
    this.body = blessed.box({
      parent: screen,
      top: 0,
      left: 1,
      width: '100%-2',
      height: '100%-1',
      tags: true,
      // The lines are wrapped to WIDTH already: blessed would break one that ends in the last
      // column again, at its last blank, and push every line under it down.
      wrap: false,
    });
    this.footer = blessed.box({ parent: screen, bottom: 0, left: 1, width: '100%-2', height: 1, tags: true });
    screen.key(['pagedown', 'down', 'space'], () => this.page(+1));
    screen.key(['pageup', 'up'], () => this.page(-1));
  }

  private get rows(): number {
    return Math.max(1, (this.screen.height as number) - 1);
  }

  /** One page down (+1) or up (-1); the last page ends with the last line. */
  private page(direction: 1 | -1): void {
    const last = Math.max(0, this.lines.length - this.rows);
    this.top = Math.max(0, Math.min(last, this.top + direction * (this.rows - 2)));
    this.show();
  }

  /** Asks the agent once and redraws. Never throws. */
  async refresh(): Promise<void> {
    try {
      [this.status, this.presence] = await Promise.all([
        this.deps.client.status(),
        this.deps.client.presence(),
      ]);
      this.unreachable = null;
    } catch (e) {
      this.unreachable = agentAwayDetail(e);
    }
    this.draw();
  }

  draw(): void {
    let addresses: string[] = [];
    try {
      addresses = this.deps.addresses();
    } catch {
      // No address readable now: the screen still shows everything else.
    }
    const now = Date.now();
    const banner = this.status ? sshBanner(this.status.ssh, now) : undefined;
    const support = this.status ? sshSupportLine(this.status.ssh) : undefined;
    this.lines = homeLines({
      status: this.status,
      unreachable: this.unreachable,
      addresses,
      presence: this.unreachable === null ? this.presence : null,
      now,
      ...(banner ? { sshBanner: banner } : {}),
      ...(support ? { sshSupport: support } : {}),
    });
    this.top = Math.min(this.top, Math.max(0, this.lines.length - this.rows));
    this.show();
  }

  private show(): void {
    const rows = this.rows;
    this.body.setContent(this.lines.slice(this.top, this.top + rows).join('\n'));
    const more =
      this.lines.length <= rows
        ? ''
        : this.top + rows < this.lines.length
          ? `   {inverse}PgDn: more (${this.lines.length - this.top - rows} lines){/inverse}`
          : '   {inverse}PgUp: back to the top{/inverse}';
    this.footer.setContent(`{bold}${MENU_HINT}{/bold}${more}`);
    this.screen.render();
  }

  start(): void {
    const tick = async () => {
      await this.refresh();
      this.timer = setTimeout(() => void tick(), this.deps.refreshMs);
    };
    void tick();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
