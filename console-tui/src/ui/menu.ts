/**
 * tty2: the console menu. Every item does the real thing through the agent; the agent's refusal
 * (critical phase, virtual platform, busy) is shown in its own words, wrapped, never cut.
 * Destructive items need a typed word; what changes the network or SSH access asks Yes/No (No
 * selected); Escape cancels either. Download logs asks Yes/No, builds the archive, and shows the
 * temporary URL, its expiry and its QR code until Close or Revoke now. After each action the
 * cursor is back on the item that started it.
 *
 * One dialog box serves every question; {@link MenuScreen.closeDialog} is the one way out of it,
 * so that nothing of one dialog (its Yes/No list, its text) shows through the next or the menu.
 */
import type { LogLinkView } from '@clgw/agent/logs/service.js';
import type { PresenceView } from '@clgw/agent/presence/presence.js';
import { sshBanner, sshSupportLine, utcTime } from '@clgw/agent/ssh/view.js';
import type { Status } from '@clgw/agent/status.js';
import blessed from 'blessed';
import { AGENT_AWAY, agentAwayDetail } from '../view/agent.js';
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
  qrLines,
} from '../view/logs.js';
import {
  CONFIRMATIONS,
  type Confirmation,
  confirmPrompt,
  confirms,
  factoryResetNote,
  type MenuAction,
  type MenuItem,
  menuItems,
  type Question,
  rebootNowConfirmation,
  sshQuestion,
} from '../view/menu.js';
import {
  FIELD_LABELS,
  type FormField,
  type FormValues,
  fieldRow,
  formFromSettings,
  formProblems,
  formToInput,
  saveQuestion,
  visibleFields,
} from '../view/network-form.js';
import { presenceShort } from '../view/presence.js';
import { clip, escapeText, visibleLength, wrapEscaped } from '../view/text.js';
import { type ConsoleDeps, messageOf } from './deps.js';

type FormRow = { field: FormField } | { action: 'save' | 'cancel' };

/** The rows the message box may take, upwards from the row above the help line. */
const MESSAGE_ROWS = 10;
/**
 * The rows under the form for its problems (13-21): five fields, each problem wrapped whole,
 * some two rows long (issue #18). A field is typed on the rows below them, so they stay in view.
 */
const PROBLEM_ROWS = 9;
/** Where a field of the form is typed: the message rows above the help line (prompt, then input). */
const FORM_INPUT_ROW = 22;
/** Where the typed confirmation word goes: under the dialog. */
const CONFIRM_INPUT_ROW = 19;
/** After an agent's answer cut to fit the menu's header: where it is shown whole. */
const WHOLE_ON_HOME = ' (in full on ALT+F1)';
/** Columns of text inside the dialog (its border and a blank each side taken off). */
const DIALOG_TEXT = WIDTH - 2 - 4;

export class MenuScreen {
  private status: Status | null = null;
  private presence: PresenceView | null = null;
  private unreachable: string | null = null;
  private items: MenuItem[] = menuItems(null);
  private mode: 'menu' | 'confirm' | 'question' | 'form' | 'logs-building' | 'logs' = 'menu';
  private busy = false;
  private timer: NodeJS.Timeout | undefined;
  private form: FormValues | undefined;
  /** The network settings in effect when the form opened, in words (for the Save question). */
  private formWas = '';
  private formRows: FormRow[] = [];
  private link: LogLinkView | undefined;
  private buildingSince = 0;
  /** The item the cursor is on: kept across every action, form and dialog. */
  private current: MenuAction = 'data-reset';
  /** What Yes or No to the open question does. */
  private answer: ((yes: boolean) => void | Promise<void>) | undefined;

  private readonly header: blessed.Widgets.BoxElement;
  private readonly section: blessed.Widgets.BoxElement;
  private readonly list: blessed.Widgets.ListElement;
  private readonly note: blessed.Widgets.BoxElement;
  private readonly problems: blessed.Widgets.BoxElement;
  private readonly message: blessed.Widgets.BoxElement;
  private readonly help: blessed.Widgets.BoxElement;
  private readonly dialog: blessed.Widgets.BoxElement;
  private readonly input: blessed.Widgets.TextboxElement;
  private readonly prompt: blessed.Widgets.BoxElement;
  /** The No/Yes under a dialog's question. */
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
    // Boxes whose rows are wrapped or cut here to WIDTH do not let blessed wrap them again: it
    // breaks a row that ends in the last column at its last blank, and the rest of it is hidden.
    this.header = blessed.box({
      parent: screen,
      top: 0,
      left: 1,
      width: '100%-2',
      height: 3,
      tags: true,
      wrap: false,
    });
    this.section = blessed.box({ parent: screen, top: 3, left: 2, width: '100%-4', height: 1, tags: true });
    this.list = blessed.list({
      parent: screen,
      top: 4,
      left: 2,
      width: '100%-4',
      height: 8,
      keys: true,
      tags: true,
      style: { selected: { inverse: true } },
    });
    this.note = blessed.box({ parent: screen, top: 10, left: 2, width: '100%-4', height: 2, tags: true });
    this.problems = blessed.box({
      parent: screen,
      top: 13,
      left: 2,
      width: '100%-4',
      height: PROBLEM_ROWS,
      tags: true,
    });
    this.message = blessed.box({
      parent: screen,
      top: 22,
      left: 1,
      width: '100%-2',
      height: 2,
      tags: true,
      wrap: false,
    });
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
    this.prompt = blessed.box({
      parent: screen,
      top: CONFIRM_INPUT_ROW,
      left: 1,
      width: '100%-2',
      height: 1,
      hidden: true,
    });
    this.input = blessed.textbox({
      parent: screen,
      top: CONFIRM_INPUT_ROW + 1,
      left: 3,
      // Wide enough for the longest value (a 64-character hostname) to be seen whole while typed.
      width: 70,
      height: 1,
      hidden: true,
      style: { bg: 'blue', fg: 'white' },
    });
    // Ctrl-U clears the field, as in a shell (the textbox itself ignores control characters).
    this.input.key('C-u', () => {
      this.input.setValue('');
      this.screen.render();
    });
    this.choice = blessed.list({
      parent: this.dialog,
      left: 2,
      width: 10,
      height: LOGS_CHOICES.length,
      keys: true,
      tags: true,
      style: { selected: { inverse: true } },
      items: LOGS_CHOICES.map((c) => ` ${c}`),
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
    this.choice.on('select', (_item, index) => void this.answered(LOGS_CHOICES[index] === 'Yes'));
    this.choice.on('cancel', () => void this.answered(false));
    this.linkActions.on('select', (_item, index) => void this.chooseLogAction(LOG_ACTIONS[index]?.action));
    this.linkActions.on('cancel', () => void this.chooseLogAction('close'));
    this.list.on('select', (_item, index) => void this.choose(index));
    // Escape in the form is its Cancel (in the menu itself it does nothing).
    this.list.on('cancel', () => {
      if (this.mode !== 'form' || this.busy) return;
      this.backToMenu();
      this.say('Network settings unchanged.');
    });
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
      this.unreachable = agentAwayDetail(e);
      this.presence = null;
    }
    this.drawHeader();
    if (this.mode === 'menu') {
      // Where the technician has moved the cursor meanwhile: the redraw keeps it there.
      const at = this.items[(this.list as unknown as { selected: number }).selected ?? -1];
      if (at) this.current = at.action;
      this.drawMenu();
    }
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

  /**
   * A message above the help line, wrapped (never cut): as many rows as it needs, upwards, up to
   * {@link MESSAGE_ROWS}.
   */
  private say(text: string, colour: 'green' | 'red' | 'yellow' | null = null): void {
    const lines = wrapEscaped(text, WIDTH).slice(0, MESSAGE_ROWS);
    this.message.top = 24 - Math.max(1, lines.length);
    this.message.height = Math.max(1, lines.length);
    this.message.setContent(lines.map((l) => (colour && l ? `{${colour}-fg}${l}{/}` : l)).join('\n'));
    this.screen.render();
  }

  private drawHeader(): void {
    const title = 'CloudLink Gateway - console menu';
    const code = this.presence ? presenceShort(this.presence, Date.now()) : '';
    // The code at the right of the title row, so that the two rows under it stay SSH access's.
    // (Ending a column short of the edge: blessed wraps a row whose last column follows a tag.)
    const gap = Math.max(2, WIDTH - 1 - title.length - visibleLength(code));
    const lines = [`{bold}${title}{/bold}${code ? ' '.repeat(gap) + code : ''}`];
    if (this.unreachable !== null) {
      // Two rows under the title: the agent being away outranks SSH access (stale then).
      // One row for the detail: what does not fit is cut, and said to be whole on tty1.
      const detail =
        this.unreachable.length <= WIDTH
          ? this.unreachable
          : `${clip(this.unreachable, WIDTH - WHOLE_ON_HOME.length)}${WHOLE_ON_HOME}`;
      lines.push(`{red-fg}${AGENT_AWAY}{/}`, `{red-fg}${escapeText(detail)}{/}`);
    } else {
      const banner = this.status ? sshBanner(this.status.ssh, Date.now()) : undefined;
      const support = this.status ? sshSupportLine(this.status.ssh) : undefined;
      if (banner) lines.push(`{yellow-fg}{bold}${escapeText(clip(banner, WIDTH))}{/}`);
      if (banner && support) lines.push(`{yellow-fg}${escapeText(clip(support, WIDTH))}{/}`);
    }
    this.header.setContent(lines.join('\n'));
  }

  private drawMenu(): void {
    this.items = menuItems(this.status);
    const at = this.items.findIndex((i) => i.action === this.current);
    this.list.setItems(this.items.map((i) => ` ${i.label}`) as unknown as blessed.Widgets.BlessedElement[]);
    this.list.select(Math.max(0, at));
    const note = factoryResetNote(this.status);
    this.note.setContent(note ? wrapEscaped(note, WIDTH - 2).join('\n') : '');
    this.note.show();
    this.problems.setContent('');
    this.section.setContent('');
    this.help.setContent('Up/Down: choose   Enter: select');
    this.drawHeader();
    this.list.show();
    this.list.focus();
    this.screen.render();
  }

  /** Back to the menu from anywhere, the cursor on the item that was chosen. */
  private backToMenu(): void {
    this.closeDialog();
    this.form = undefined;
    this.mode = 'menu';
    this.drawMenu();
  }

  private async choose(index: number): Promise<void> {
    if (this.busy) return;
    if (this.mode === 'form') return this.chooseFormRow(index);
    if (this.mode !== 'menu') return;
    const item = this.items[index];
    if (!item) return;
    this.current = item.action;
    if (item.action === 'data-reset' || item.action === 'factory-reset')
      return this.confirm(CONFIRMATIONS[item.action]);
    if (item.action === 'reboot-now') {
      const c = rebootNowConfirmation(this.status);
      return c ? this.confirm(c) : this.say('Nothing waits for calls to end any more.');
    }
    if (item.action === 'ssh') return this.askSsh();
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

  /**
   * Opens the dialog: a title, lines of text (wrapped to it) and, for a question, No/Yes under
   * it with No selected. Whatever an earlier dialog left is replaced.
   */
  private openDialog(title: string, text: string[], question?: string): void {
    this.closeDialog();
    this.list.hide();
    this.note.hide();
    this.say('');
    const lines = ['', ...text.flatMap((l) => (l ? wrapEscaped(l, DIALOG_TEXT) : ['']))];
    if (question) lines.push('', `{bold}${escapeText(question)}{/bold}`);
    this.dialog.setLabel(` ${escapeText(title)} `);
    this.dialog.setContent(lines.map((l) => (l ? ` ${l}` : '')).join('\n'));
    this.dialog.height = lines.length + 3 + (question ? LOGS_CHOICES.length : 0);
    if (question) {
      this.choice.top = lines.length + 1;
      this.choice.select(0);
      this.choice.show();
    }
    this.dialog.show();
    if (question) this.choice.focus();
    this.screen.render();
  }

  /** The one way out of the dialog: hidden with its Yes/No, its text and title gone. */
  private closeDialog(): void {
    this.answer = undefined;
    this.choice.hide();
    this.dialog.setContent('');
    this.dialog.setLabel('');
    this.dialog.hide();
  }

  /** A Yes/No question; `then` runs with the answer after the dialog closed. */
  private ask(q: Question, then: (yes: boolean) => void | Promise<void>): void {
    this.mode = 'question';
    this.openDialog(q.title, q.text, q.question);
    this.answer = then;
    this.help.setContent('Up/Down: choose   Enter: answer   Escape: No');
    this.screen.render();
  }

  private async answered(yes: boolean): Promise<void> {
    const then = this.answer;
    if (this.mode !== 'question' || !then) return;
    this.closeDialog();
    await then(yes);
  }

  /** Enabling and disabling SSH access both ask first: either changes who can reach the box. */
  private askSsh(): void {
    const on = !this.status?.ssh.enabled;
    const now = Date.now();
    this.ask(sshQuestion(on, utcTime(now + 24 * 3_600_000, now)), async (yes) => {
      this.backToMenu();
      if (!yes) return this.say('Cancelled: SSH access unchanged.');
      const view = await this.run(on ? 'Enabling SSH access' : 'Disabling SSH access', () =>
        this.deps.client.setSsh(on),
      );
      if (!view) return;
      if (this.status) this.status = { ...this.status, ssh: view };
      this.drawMenu();
      this.say(on ? 'SSH access enabled for 24 hours.' : 'SSH access disabled.', 'green');
    });
  }

  private confirm(c: Confirmation): void {
    this.mode = 'confirm';
    this.openDialog(c.title, [...c.text, '', confirmPrompt(c)]);
    this.help.setContent('Enter: confirm (only with the word typed)   Escape: Cancel');
    this.readLine(`Type ${c.word}:`, '', async (typed) => {
      this.backToMenu();
      if (typed === null || !confirms(c, typed)) {
        this.say('Cancelled.');
        return;
      }
      const done = await this.run(c.title, () => this.deps.client.post(c.endpoint, c.body));
      if (done) this.say(c.done, 'green');
    });
  }

  /**
   * Reads one line in the input box, its prompt on row `at`; null when cancelled with Escape.
   * Ctrl-U clears it.
   */
  private readLine(
    label: string,
    value: string,
    then: (typed: string | null) => void | Promise<void>,
    at = CONFIRM_INPUT_ROW,
  ): void {
    this.say('');
    this.prompt.top = at;
    this.input.top = at + 1;
    this.prompt.setContent(`${label}   (Enter: done   Ctrl-U: clear   Escape: cancel)`);
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
    this.holdTypedAhead();
  }

  /**
   * blessed's textbox starts listening for keys only on the next turn of the event loop (so that
   * the Enter that opened it is not typed into it). Keys read together with that Enter, typed on
   * while the console was busy or pasted, reached it before it listened and were lost: RESET
   * typed after Enter went nowhere. They are held here and, once it listens, sent again through
   * the screen to whatever has the focus then (the field, or the menu or form once a held Enter
   * or Escape has ended the field). Ctrl-U acts when read and again when sent, in its place among
   * the keys: the value comes out as if they had been typed slowly.
   */
  private holdTypedAhead(): void {
    const held: [string, blessed.Widgets.Events.IKeyEventArg][] = [];
    const hold = (ch: string, key: blessed.Widgets.Events.IKeyEventArg) => {
      held.push([ch, key]);
    };
    this.input.on('keypress', hold);
    // Queued after blessed's own setImmediate: the textbox listens when this runs.
    setImmediate(() => {
      this.input.removeListener('keypress', hold);
      for (const [ch, key] of held) this.screen.program.emit('keypress', ch, key);
    });
  }

  private async openForm(): Promise<void> {
    const view = await this.run('Reading the network settings', () => this.deps.client.network());
    if (!view) return;
    this.say('');
    this.form = formFromSettings(view.settings);
    this.formWas = `${view.summary}, hostname ${view.settings.hostname}`;
    this.mode = 'form';
    this.note.hide();
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
    // In the order of the fields, each wrapped; what does not fit is said to be there.
    const lines = Object.values(problems).flatMap((p) => wrapEscaped(p ?? '', WIDTH - 4));
    const shown =
      lines.length <= PROBLEM_ROWS
        ? lines
        : [...lines.slice(0, PROBLEM_ROWS - 1), '... more: see the fields marked *'];
    this.problems.setContent(shown.map((l) => `{red-fg}${l}{/}`).join('\n'));
    this.section.setContent('{bold}Ethernet configuration and Hostname{/bold}');
    this.help.setContent('Enter: edit (IPv4: DHCP/static)   Save / Cancel at the end   Escape: Cancel');
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
      // Escape while typing leaves this field, not the form (the form's Escape is its Cancel).
      this.help.setContent(`Enter: done   Escape: ${FIELD_LABELS[field]} unchanged (the form stays open)`);
      this.readLine(
        `${FIELD_LABELS[field]}:`,
        form[field],
        (typed) => {
          if (typed !== null) form[field] = typed.trim();
          this.drawForm(index);
        },
        FORM_INPUT_ROW,
      );
      return;
    }
    if (row.action === 'cancel') {
      this.backToMenu();
      this.say('Network settings unchanged.');
      return;
    }
    if (Object.keys(formProblems(form)).length) {
      this.say('Not saved: correct the fields marked * first.', 'red');
      return;
    }
    // A wrong address cuts the technician off: the new settings are named and asked about first.
    this.list.hide();
    this.problems.setContent('');
    this.ask(saveQuestion(form, this.formWas), async (yes) => {
      if (!yes) {
        this.mode = 'form';
        this.drawForm(index);
        this.say('Not saved: the network settings are unchanged.');
        return;
      }
      const saved = await this.run('Saving the network settings', () =>
        this.deps.client.changeNetwork(formToInput(form)),
      );
      if (!saved) {
        this.mode = 'form';
        this.drawForm(index);
        return;
      }
      this.backToMenu();
      this.say(`Saved: ${saved.summary}, hostname ${saved.settings.hostname}`, 'green');
    });
  }

  /** Download logs: the question, No selected; Escape is No. */
  private askLogs(): void {
    this.ask({ title: LOGS_TITLE, text: [LOGS_EXPLANATION.join(' ')], question: LOGS_QUESTION }, (yes) =>
      this.answerLogs(yes),
    );
  }

  private async answerLogs(yes: boolean): Promise<void> {
    if (!yes) {
      this.backToMenu();
      this.say('Cancelled.');
      return;
    }
    this.mode = 'logs-building';
    this.busy = true;
    this.buildingSince = Date.now();
    this.openDialog(LOGS_TITLE, []);
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
    this.closeDialog();
    if (!link) {
      this.backToMenu();
      this.say(`Download logs: ${error ?? 'no answer'}`, 'red');
      return;
    }
    this.link = link;
    this.showLink();
  }

  private drawBuilding(): void {
    const seconds = Math.floor((Date.now() - this.buildingSince) / 1000);
    const lines = [
      '',
      ...wrapEscaped(LOGS_BUILDING, DIALOG_TEXT).map((l) => `{yellow-fg}${l}{/}`),
      `${seconds} s`,
    ];
    this.dialog.height = lines.length + 3;
    this.dialog.setContent(lines.map((l) => (l ? ` ${l}` : '')).join('\n'));
    this.screen.render();
  }

  /** The link screen: URL, QR code, expiry, Revoke now / Close (Close selected). */
  private showLink(): void {
    const link = this.link;
    if (!link) return;
    this.mode = 'logs';
    this.list.hide();
    this.note.hide();
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
          : `The log download URL works until ${utcTime(Date.parse(link.expiresAt), now)} unless revoked.`,
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
    this.backToMenu();
  }
}
