/**
 * The blessed screen both consoles draw on, and a text snapshot of it (what a headless test or a
 * review capture compares).
 */
import type { Readable, Writable } from 'node:stream';
import blessed from 'blessed';

export interface ScreenOptions {
  input?: Readable;
  output?: Writable;
  /** The terminal type (`linux` on the appliance's VGA console). */
  terminal?: string;
  title: string;
}

export function createScreen(opts: ScreenOptions): blessed.Widgets.Screen {
  return blessed.screen({
    input: opts.input,
    output: opts.output,
    terminal: opts.terminal ?? process.env.TERM ?? 'linux',
    // ASCII and the console's line-drawing set only: no wide glyphs on the VGA console.
    fullUnicode: false,
    smartCSR: true,
    warnings: false,
    title: opts.title,
  } as blessed.Widgets.IScreenOptions);
}

/** The screen's characters as text, one line per row, trailing blanks cut. */
export function screenText(screen: blessed.Widgets.Screen): string {
  const lines = (screen as unknown as { lines: [unknown, string][][] }).lines;
  return lines
    .map((row) =>
      row
        .map((cell) => cell[1])
        .join('')
        .trimEnd(),
    )
    .join('\n');
}
