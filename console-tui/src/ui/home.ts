/**
 * tty1: the home screen. Asks the agent every `refreshMs` and redraws; an unreachable agent is
 * said on screen and asked again at the next tick.
 */
import type { PresenceView } from '@clgw/agent/presence/presence.js';
import { sshBanner, sshSupportLine } from '@clgw/agent/ssh/view.js';
import type { Status } from '@clgw/agent/status.js';
import blessed from 'blessed';
import { homeLines } from '../view/home.js';
import { type ConsoleDeps, messageOf } from './deps.js';

export class HomeScreen {
  private readonly body: blessed.Widgets.BoxElement;
  private timer: NodeJS.Timeout | undefined;
  private status: Status | null = null;
  private presence: PresenceView | null = null;
  private unreachable: string | null = null;

  constructor(
    private readonly screen: blessed.Widgets.Screen,
    private readonly deps: ConsoleDeps,
  ) {
    this.body = blessed.box({ parent: screen, top: 0, left: 1, width: '100%-2', height: '100%', tags: true });
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
      this.unreachable = messageOf(e);
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
    const banner = this.status ? sshBanner(this.status.ssh) : undefined;
    const support = this.status ? sshSupportLine(this.status.ssh) : undefined;
    this.body.setContent(
      homeLines({
        status: this.status,
        unreachable: this.unreachable,
        addresses,
        presence: this.unreachable === null ? this.presence : null,
        now: Date.now(),
        ...(banner ? { sshBanner: banner } : {}),
        ...(support ? { sshSupport: support } : {}),
      }).join('\n'),
    );
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
