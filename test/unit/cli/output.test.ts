import { describe, expect, it } from 'vitest';
import type { Progress } from '../../../agent/src/actors/progress.js';
import {
  fitText,
  hasByteProgress,
  outputWidth,
  progressLine,
  wrapLine,
} from '../../../agent/src/cli/output.js';

const MIB = 1024 * 1024;
const download: Progress = {
  phase: 'downloading 1.1.0',
  bytes: 300 * MIB,
  total: 620 * MIB,
  downloaded: 12.5 * MIB,
  reused: 287.5 * MIB,
  rate: 4.2 * MIB,
  startedAt: 0,
};

describe('clgw output layout', () => {
  it('fits the terminal, else COLUMNS, else 80', () => {
    expect(outputWidth(132, { COLUMNS: '60' })).toBe(132);
    expect(outputWidth(undefined, { COLUMNS: '60' })).toBe(60);
    expect(outputWidth(undefined, { COLUMNS: 'wide' })).toBe(80);
    expect(outputWidth(0, {})).toBe(80);
  });

  it('a download line at 80 columns keeps everything: phase, bar, percent, bytes, rate, sources', () => {
    const line = progressLine(download, 79, 0);
    expect(line.length).toBeLessThanOrEqual(79);
    expect(line).toMatch(/^downloading 1\.1\.0 \[#+\.+\] {2}48 % 300\.0\/620\.0 MiB 4\.2 MiB\/s/);
    // At 79 columns the sources do not fit beside a bar of 10: they are the first to go.
    const wide = progressLine(download, 150, 0);
    expect(wide).toContain('(12.5 downloaded, 287.5 reused)');
    expect(wide).toContain('4.2 MiB/s');
  });

  it('narrower, the least important parts go first and the line never exceeds the width', () => {
    for (let width = 10; width <= 160; width++) {
      expect(progressLine(download, width, 0).length, String(width)).toBeLessThanOrEqual(width);
    }
    const at50 = progressLine(download, 50, 0);
    expect(at50).not.toContain('reused');
    expect(at50).toContain(' 48 %');
    expect(progressLine(download, 30, 0)).toBe('downloading 1.1.0  48 %');
  });

  it('verifying shows the percentage of the read-back, as a download does', () => {
    const verifying: Progress = {
      phase: 'verifying 1.1.0',
      bytes: 20 * MIB,
      total: 32 * MIB,
      rate: 400 * MIB,
      startedAt: 1000,
    };
    expect(hasByteProgress(verifying)).toBe(true);
    const line = progressLine(verifying, 79, 13_400);
    expect(line.length).toBeLessThanOrEqual(79);
    expect(line).toMatch(/^verifying 1\.1\.0 \[#+\.+\] {2}62 % 20\.0\/32\.0 MiB 400\.0 MiB\/s$/);
  });

  it('a phase that does not count its bytes shows the time it has taken, no percentage', () => {
    const other: Progress = {
      phase: 'installing 1.1.0',
      bytes: 0,
      total: 32 * MIB,
      rate: 0,
      startedAt: 1000,
    };
    expect(hasByteProgress(other)).toBe(false);
    expect(progressLine(other, 79, 13_400)).toBe('installing 1.1.0… 12 s');
  });

  it('wraps long lines at spaces under their value, splitting only a word longer than a line', () => {
    const cause = `error:        HTTP_STATUS: GET https://downloads.example/releases/compat.yaml answered HTTP 503 (service unavailable) after 3 attempts`;
    const lines = fitText(cause, 80).split('\n');
    expect(lines.every((l) => l.length <= 80)).toBe(true);
    expect(lines[1]).toMatch(/^ {14}\S/);
    expect(lines[0]).toMatch(/^error: {8}HTTP_STATUS: GET/);
    expect(
      lines
        .map((l) => l.trim())
        .join(' ')
        .replace(/ +/g, ' '),
    ).toBe(cause.replace(/ +/g, ' '));
    const url = `x ${'a'.repeat(100)} y`;
    const split = wrapLine(url, 40, 2);
    expect(split.every((l) => l.length <= 40)).toBe(true);
    expect(split.join('').replace(/ /g, '')).toBe(url.replace(/ /g, ''));
  });

  it('columns and list items continue under their text', () => {
    const diag = `  FAIL ntp        NTP query to 127.0.0.1:9 failed: refused (ICMP port unreachable: nothing listening on udp/9)`;
    expect(fitText(diag, 80).split('\n')[1]).toMatch(/^ {18}\S/);
    const item = `              - cl.hostname: 'gw_hq': label "gw_hq" may only hold letters, digits and hyphens`;
    expect(fitText(item, 80).split('\n')[1]).toMatch(/^ {16}\S/);
  });
});
