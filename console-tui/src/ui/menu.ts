/**
 * tty2: the console menu. Every item does the real thing through the agent; the agent's refusal
 * (critical phase, virtual platform, busy) is shown in its own words. Destructive items need a
 * typed word; Escape or anything else cancels. Download logs asks Yes/No (No selected), builds
 * the archive, and shows the temporary URL, its expiry and its QR code until Close or Revoke now.
 */
import type { LogLinkView } from '@clgw/agent/logs/service.js';
import type { PresenceView } from '@clgw/agent/presence/presence.js';
import { sshBanner, sshSupportLine } from '@clgw/agent/ssh/view.js';
import type { Status } from '@clgw/agent/status.js';
import blessed from 'blessed';
import { WIDTH } from '../view/home.js';
import {
  LOG_ACTION_DEFAULT,
  LOG_ACTIONS,
  LOGS_BUILDING,
  LOGS_CHOICES,
  LOGS_EXPLANATION,
  LOGS_QUESTION,
  LOGS_TITLE,
  linkExpired,
  linkInfoLines,
  localTime,
  qrLines,
} from '../view/logs.js';
import { CONFIRMATIONS, confirmPrompt, confirms, type MenuItem, menuItems } from '../view/menu.js';
import {
  FIELD_LABELS,
  type FormField,
  type FormValues,
  fieldRow,
  formFromSettings,
  formProblems,
  formToInput,
  visibleFields,
} from '../view/network-form.js';
import { presenceShort } from '../view/presence.js';
import { clip, escapeText, visibleLength } from '../view/text.js';
import { type ConsoleDeps, messageOf } from './deps.js';

type FormRow = { field: FormField } | { action: 'save' | 'cancel' };

export class MenuScreen {
  private status: Status | null = null;
  private presence: PresenceView | null = null;
  private unreachable: string | null = null;
  private items: MenuItem[] = menuItems(null);
  private mode: 'menu' | 'confirm' | 'form' | 'logs-ask' | 'logs-building' | 'logs' = 'menu';
  private busy = false;
  private timer: NodeJS.Timeout | undefined;
  private form: FormValues | undefined;
  private formRows: FormRow[] = [];
  private link: LogLinkView | undefined;
  private buildingSince = 0;

  private readonly header: blessed.Widgets.BoxElement;
  private readonly section: blessed.Widgets.BoxElement;
  private readonly list: blessed.Widgets.ListElement;
  private readonly problems: blessed.Widgets.BoxElement;
  private readonly message: blessed.Widgets.BoxElement;
  private readonly help: blessed.Widgets.BoxElement;
  private readonly dialog: blessed.Widgets.BoxElement;
  private readonly input: blessed.Widgets.TextboxElement;
  private readonly prompt: blessed.Widgets.BoxElement;
  /** Download logs: the Yes/No under the question, and the link screen's parts. */
  private readonly choice: blessed.Widgets.ListElement;
  private readonly linkUrl: blessed.Widgets.BoxElement;
  private readonly linkQr: blessed.Widgets.BoxElement;
  private readonly linkInfo: blessed.Widgets.BoxElement;
  private readonly linkActions: blessed.Widgets.ListElement;
  private readonly linkNote: blessed.Widgets.BoxElement;

  constructor(
    private readonly screen: blessed.Widgets.Screen,
    private readonly deps: ConsoleDeps,
  ) {
    this.header = blessed.box({ parent: screen, top: 0, left: 1, width: '100%-2', height: 3, tags: true });
    this.section = blessed.box({ parent: screen, top: 3, left: 2, width: '100%-4', height: 1, tags: true });
    this.list = blessed.list({
      parent: screen,
      top: 4,
      left: 2,
      width: '100%-4',
      height: 9,
      keys: true,
      tags: true,
      style: { selected: { inverse: true } },
    });
    this.problems = blessed.box({ parent: screen, top: 14, left: 2, width: '100%-4', height: 5, tags: true });
    this.message = blessed.box({ parent: screen, top: 21, left: 1, width: '100%-2', height: 2, tags: true });
    this.help = blessed.box({ parent: screen, top: 24, left: 1, width: '100%-2', height: 1, tags: true });
    this.dialog = blessed.box({
      parent: screen,
      top: 4,
      left: 2,
      width: '100%-4',
      height: 14,
      border: { type: 'line' },
      tags: true,
      hidden: true,
    });
    this.prompt = blessed.box({ parent: screen, top: 19, left: 1, width: '100%-2', height: 1, hidden: true });
    this.input = blessed.textbox({
      parent: screen,
      top: 20,
      left: 3,
      width: 40,
      height: 1,
      hidden: true,
      style: { bg: 'blue', fg: 'white' },
    });
    this.choice = blessed.list({
      parent: this.dialog,
      top: LOGS_EXPLANATION.length + 4,
      left: 2,
      width: 10,
      height: LOGS_CHOICES.length,
      keys: true,
      tags: true,
      style: { selected: { inverse: true } },
      items: LOGS_CHOICES.map((c) => ` ${c}`),
      // Only the log question shows it: the reset confirmations share the dialog.
      hidden: true,
    });
    // The link screen, rows 3-23: the URL on one line, the QR code at the left, the rest beside it.
    this.linkUrl = blessed.box({ parent: screen, top: 4, left: 1, width: '100%-2', height: 1, tags: true });
    this.linkQr = blessed.box({ parent: screen, top: 5, left: 1, width: 40, height: 19, tags: false });
    this.linkInfo = blessed.box({ parent: screen, top: 5, left: 43, width: 36, height: 9, tags: true });
    this.linkActions = blessed.list({
      parent: screen,
      top: 15,
      left: 43,
      width: 16,
      height: LOG_ACTIONS.length,
      keys: true,
      tags: true,
      style: { selected: { inverse: true } },
      items: LOG_ACTIONS.map((a) => ` ${a.label}`),
    });
    this.linkNote = blessed.box({ parent: screen, top: 18, left: 43, width: 36, height: 5, tags: true });
    for (const el of [this.linkUrl, this.linkQr, this.linkInfo, this.linkActions, this.linkNote]) el.hide();
    this.choice.on('select', (_item, index) => void this.answerLogs(LOGS_CHOICES[index] === 'Yes'));
    this.choice.on('cancel', () => void this.answerLogs(false));
    this.linkActions.on('select', (_item, index) => void this.chooseLogAction(LOG_ACTIONS[index]?.action));
    this.linkActions.on('cancel', () => void this.chooseLogAction('close'));
    this.list.on('select', (_item, index) => void this.choose(index));
    this.drawMenu();
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
      this.presence = null;
    }
    this.drawHeader();
    if (this.mode === 'menu') this.drawMenu();
    if (this.mode === 'logs-building') this.drawBuilding();
    if (this.mode === 'logs') this.drawLinkInfo();
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

  private say(text: string, colour: 'green' | 'red' | 'yellow' | null = null): void {
    const t = escapeText(text);
    this.message.setContent(colour ? `{${colour}-fg}${t}{/}` : t);
    this.screen.render();
  }

  private drawHeader(): void {
    const title = 'CloudLink Gateway - console menu';
    const code = this.presence ? presenceShort(this.presence, Date.now()) : '';
    // The code at the right of the title row, so that the two rows under it stay SSH access's.
    // (Ending a column short of the edge: blessed wraps a row whose last column follows a tag.)
    const gap = Math.max(2, WIDTH - 1 - title.length - visibleLength(code));
    const lines = [`{bold}${title}{/bold}${code ? ' '.repeat(gap) + code : ''}`];
    const banner = this.status ? sshBanner(this.status.ssh) : undefined;
    const support = this.status ? sshSupportLine(this.status.ssh) : undefined;
    if (banner) lines.push(`{yellow-fg}{bold}${escapeText(clip(banner, WIDTH))}{/}`);
    // Three rows above the menu: the agent being away outranks the support line (stale then).
    if (this.unreachable !== null) {
      lines.push(
        `{red-fg}${escapeText(clip(`Agent not reachable, retrying: ${this.unreachable}`, WIDTH))}{/}`,
      );
    } else if (support) lines.push(`{yellow-fg}${escapeText(clip(support, WIDTH))}{/}`);
    this.header.setContent(lines.join('\n'));
  }

  private drawMenu(): void {
    const selected = (this.list as unknown as { selected: number }).selected ?? 0;
    this.items = menuItems(this.status);
    this.list.setItems(this.items.map((i) => ` ${i.label}`) as unknown as blessed.Widgets.BlessedElement[]);
    this.list.select(Math.min(selected, this.items.length - 1));
    this.problems.setContent('');
    this.section.setContent('');
    this.help.setContent('Up/Down: choose   Enter: select');
    this.drawHeader();
    this.list.show();
    this.list.focus();
    this.screen.render();
  }

  private async choose(index: number): Promise<void> {
    if (this.busy) return;
    if (this.mode === 'form') return this.chooseFormRow(index);
    if (this.mode !== 'menu') return;
    const item = this.items[index];
    if (!item) return;
    if (item.action === 'data-reset' || item.action === 'factory-reset') return this.confirm(item.action);
    if (item.action === 'ssh') return this.toggleSsh();
    if (item.action === 'logs') return this.askLogs();
    return this.openForm();
  }

  /** Runs one agent request with the menu locked; the agent's refusal is shown as it says it. */
  private async run<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
    this.busy = true;
    this.say(`${what}...`, 'yellow');
    try {
      return await fn();
    } catch (e) {
      this.say(messageOf(e), 'red');
      return undefined;
    } finally {
      this.busy = false;
    }
  }

  private async toggleSsh(): Promise<void> {
    const on = !this.status?.ssh.enabled;
    const view = await this.run(on ? 'Enabling SSH access' : 'Disabling SSH access', () =>
      this.deps.client.setSsh(on),
    );
    if (!view) return;
    if (this.status) this.status = { ...this.status, ssh: view };
    this.drawMenu();
    this.say(on ? 'SSH access enabled for 24 hours.' : 'SSH access disabled.', 'green');
  }

  private confirm(action: 'data-reset' | 'factory-reset'): void {
    const c = CONFIRMATIONS[action];
    this.mode = 'confirm';
    this.list.hide();
    this.dialog.setLabel(` ${c.title} `);
    this.dialog.height = c.text.length + 6;
    this.dialog.setContent(
      ['', ...c.text.map((l) => ` ${escapeText(l)}`), '', ` ${confirmPrompt(c)}`].join('\n'),
    );
    this.dialog.show();
    this.help.setContent('Enter: confirm (only with the word typed)   Escape: Cancel');
    this.ask(`Type ${c.word}:`, '', async (typed) => {
      this.dialog.hide();
      this.mode = 'menu';
      this.drawMenu();
      if (typed === null || !confirms(c, typed)) {
        this.say('Cancelled.');
        return;
      }
      const done = await this.run(c.title, () => this.deps.client.post(c.endpoint, { confirm: true }));
      if (done) this.say(c.done, 'green');
    });
  }

  /** Reads one line in the input box under the screen; null when cancelled with Escape. */
  private ask(label: string, value: string, then: (typed: string | null) => void | Promise<void>): void {
    this.message.setContent('');
    this.prompt.setContent(label);
    this.prompt.show();
    this.input.show();
    this.input.setValue(value);
    this.screen.render();
    this.input.readInput((_err, typed) => {
      this.prompt.hide();
      this.input.hide();
      this.input.clearValue();
      void Promise.resolve(then(typeof typed === 'string' ? typed : null)).catch((e) =>
        this.say(messageOf(e), 'red'),
      );
      this.screen.render();
    });
  }

  private async openForm(): Promise<void> {
    const view = await this.run('Reading the network settings', () => this.deps.client.network());
    if (!view) return;
    this.say('');
    this.form = formFromSettings(view.settings);
    this.mode = 'form';
    this.drawForm(0);
  }

  private drawForm(select: number): void {
    const form = this.form;
    if (!form) return;
    const problems = formProblems(form);
    this.formRows = [
      ...visibleFields(form).map((field) => ({ field })),
      { action: 'save' as const },
      { action: 'cancel' as const },
    ];
    const rows = this.formRows.map((r) =>
      'field' in r
        ? ` ${problems[r.field] ? '{red-fg}*{/}' : ' '} ${escapeText(clip(fieldRow(form, r.field), WIDTH - 8))}`
        : r.action === 'save'
          ? '   [ Save ]'
          : '   [ Cancel ]',
    );
    this.list.setItems(rows as unknown as blessed.Widgets.BlessedElement[]);
    this.list.select(Math.min(select, rows.length - 1));
    this.problems.setContent(
      Object.values(problems)
        .map((p) => `{red-fg}${escapeText(clip(p ?? '', WIDTH - 4))}{/}`)
        .join('\n'),
    );
    this.section.setContent('{bold}Ethernet configuration and Hostname{/bold}');
    this.help.setContent('Enter: edit a field (IPv4: switch DHCP/static)   Save / Cancel at the end');
    this.list.show();
    this.list.focus();
    this.screen.render();
  }

  private async chooseFormRow(index: number): Promise<void> {
    const form = this.form;
    const row = this.formRows[index];
    if (!form || !row) return;
    if ('field' in row) {
      if (row.field === 'mode') {
        form.mode = form.mode === 'dhcp' ? 'static' : 'dhcp';
        this.drawForm(index);
        return;
      }
      const field = row.field;
      this.ask(`${FIELD_LABELS[field]}:`, form[field], (typed) => {
        if (typed !== null) form[field] = typed.trim();
        this.drawForm(index);
      });
      return;
    }
    if (row.action === 'cancel') {
      this.closeForm();
      this.say('Network settings unchanged.');
      return;
    }
    const problems = Object.values(formProblems(form));
    if (problems.length) {
      this.say('Not saved: correct the fields marked * first.', 'red');
      return;
    }
    const saved = await this.run('Saving the network settings', () =>
      this.deps.client.changeNetwork(formToInput(form)),
    );
    if (!saved) return;
    this.closeForm();
    this.say(`Saved: ${saved.summary}, hostname ${saved.settings.hostname}`, 'green');
  }

  private closeForm(): void {
    this.form = undefined;
    this.mode = 'menu';
    this.drawMenu();
    this.list.select(0);
  }

  /** Download logs: the question, No selected; Escape is No. */
  private askLogs(): void {
    this.mode = 'logs-ask';
    this.list.hide();
    this.message.setContent('');
    this.dialog.setLabel(` ${LOGS_TITLE} `);
    this.dialog.height = LOGS_EXPLANATION.length + LOGS_CHOICES.length + 6;
    this.dialog.setContent(
      ['', ...LOGS_EXPLANATION.map((l) => ` ${l}`), '', ` {bold}${LOGS_QUESTION}{/bold}`].join('\n'),
    );
    this.choice.select(0);
    this.choice.show();
    this.dialog.show();
    this.choice.focus();
    this.help.setContent('Up/Down: choose   Enter: answer   Escape: No');
    this.screen.render();
  }

  private async answerLogs(yes: boolean): Promise<void> {
    if (this.mode !== 'logs-ask') return;
    if (!yes) {
      this.dialog.hide();
      this.mode = 'menu';
      this.drawMenu();
      this.say('Cancelled.');
      return;
    }
    this.mode = 'logs-building';
    this.busy = true;
    this.buildingSince = Date.now();
    this.choice.hide();
    this.dialog.focus();
    this.help.setContent('');
    this.drawBuilding();
    let link: LogLinkView | undefined;
    let error: string | undefined;
    try {
      link = await this.deps.client.createLogLink();
    } catch (e) {
      error = messageOf(e);
    } finally {
      this.busy = false;
    }
    this.dialog.hide();
    if (!link) {
      this.mode = 'menu';
      this.drawMenu();
      this.say(`Download logs: ${error ?? 'no answer'}`, 'red');
      return;
    }
    this.link = link;
    this.showLink();
  }

  private drawBuilding(): void {
    const seconds = Math.floor((Date.now() - this.buildingSince) / 1000);
    this.dialog.height = 5;
    this.dialog.setContent(['', ` {yellow-fg}${LOGS_BUILDING}{/}`, ` ${seconds} s`].join('\n'));
    this.screen.render();
  }

  /** The link screen: URL, QR code, expiry, Revoke now / Close (Close selected). */
  private showLink(): void {
    const link = this.link;
    if (!link) return;
    this.mode = 'logs';
    this.list.hide();
    this.message.hide();
    this.section.setContent(`{bold}${LOGS_TITLE}{/bold}: open this URL in a browser on the LAN`);
    this.linkUrl.setContent(`{bold}${escapeText(link.url)}{/bold}`);
    const qr = qrLines(link.url, this.linkQr.height as number, this.linkQr.width as number);
    this.linkQr.setContent(qr ? qr.join('\n') : '\n (the URL is too long for a QR code here)');
    this.linkNote.setContent('');
    this.linkActions.select(LOG_ACTION_DEFAULT);
    for (const el of [this.linkUrl, this.linkQr, this.linkInfo, this.linkActions, this.linkNote]) el.show();
    this.linkActions.focus();
    this.help.setContent('Up/Down: choose   Enter: select   Escape: Close');
    this.drawLinkInfo();
  }

  private drawLinkInfo(): void {
    if (this.link) this.linkInfo.setContent(linkInfoLines(this.link, Date.now()).join('\n'));
    this.screen.render();
  }

  private async chooseLogAction(action: 'revoke' | 'close' | undefined): Promise<void> {
    const link = this.link;
    if (this.mode !== 'logs' || this.busy || !link || !action) return;
    if (action === 'close') {
      this.closeLink();
      const now = Date.now();
      this.say(
        linkExpired(link, now)
          ? 'The log download URL has expired.'
          : `The log download URL works until ${localTime(Date.parse(link.expiresAt), now)} unless revoked.`,
      );
      return;
    }
    this.busy = true;
    this.linkNote.setContent('{yellow-fg}Revoking...{/}');
    this.screen.render();
    try {
      const { revoked } = await this.deps.client.revokeLogLinks();
      this.closeLink();
      this.say(
        revoked > 0
          ? 'Revoked: the log download URL no longer works.'
          : 'No log download URL was active (it had expired).',
        'green',
      );
    } catch (e) {
      this.linkNote.setContent(`{red-fg}${escapeText(`Not revoked: ${messageOf(e)}`)}{/}`);
      this.screen.render();
    } finally {
      this.busy = false;
    }
  }

  private closeLink(): void {
    this.link = undefined;
    for (const el of [this.linkUrl, this.linkQr, this.linkInfo, this.linkActions, this.linkNote]) el.hide();
    this.message.show();
    this.mode = 'menu';
    this.drawMenu();
  }
}
