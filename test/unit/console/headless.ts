import { PassThrough } from 'node:stream';
import type blessed from 'blessed';
import { expect } from 'vitest';
import { createScreen, screenText } from '../../../console-tui/src/ui/screen.js';

export interface Headless {
  screen: blessed.Widgets.Screen;
  input: PassThrough;
  text(): string;
}

/** A blessed screen on in-memory streams, fixed at 80x25 as the VGA console, TERM=linux. */
export function headlessScreen(): Headless {
  const input = new PassThrough();
  const output = Object.assign(new PassThrough(), { columns: 80, rows: 25, isTTY: true });
  output.resume(); // the escape sequences are not looked at; the screen buffer is
  const screen = createScreen({ input, output, terminal: 'linux', title: 'test' });
  return {
    screen,
    input,
    text: () => {
      screen.render();
      return screenText(screen);
    },
  };
}

const immediate = () => new Promise<void>((r) => setImmediate(r));

/**
 * Until the screen has read all that was written to `input` and what the keys set off has run.
 * A key is handled synchronously when its chunk is read (on the spot or on the next tick); what it
 * starts runs in promise callbacks (the stand-in agent answers at once) and in setImmediate
 * callbacks: blessed's textbox starts listening for keys in one, after the Enter that opened it.
 * A setImmediate queued after those runs after them, whatever the machine's load; a fixed sleep
 * did not: a timer due after 20 ms can fire before an immediate queued in the check phase when
 * the process was descheduled for 20 ms, and the next key was then lost.
 */
export async function settle(input: PassThrough): Promise<void> {
  for (let round = 0; input.readableLength > 0 || input.writableLength > 0; round++) {
    if (round > 1000) throw new Error('the screen does not read its input');
    await immediate();
  }
  // Two more rounds, for immediates that those immediates queue in turn.
  await immediate();
  await immediate();
}

/** Types keys into the screen's input the way a terminal sends them, letting blessed react to each. */
export async function typeKeys(input: PassThrough, ...keys: string[]): Promise<void> {
  for (const k of keys) {
    input.write(k);
    await settle(input);
  }
}

/**
 * Waits until the screen shows `text`, for an answer that comes later than the keys that asked
 * for it; fails with the screen shown after `ms`.
 */
export async function waitForText(h: Headless, text: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  await settle(h.input);
  while (!h.text().includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  expect(h.text()).toContain(text);
}

export const KEY = { enter: '\r', down: '\x1b[B', up: '\x1b[A', escape: '\x1b' } as const;
