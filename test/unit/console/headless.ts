import { PassThrough } from 'node:stream';
import type blessed from 'blessed';
import { createScreen, screenText } from '../../../console-tui/src/ui/screen.js';

/** A blessed screen on in-memory streams, fixed at 80x25 as the VGA console, TERM=linux. */
export function headlessScreen(): { screen: blessed.Widgets.Screen; input: PassThrough; text(): string } {
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

/** Types keys into the screen's input the way a terminal sends them, letting blessed react. */
export async function typeKeys(input: PassThrough, ...keys: string[]): Promise<void> {
  for (const k of keys) {
    input.write(k);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const KEY = { enter: '\r', down: '\x1b[B', up: '\x1b[A', escape: '\x1b' } as const;
