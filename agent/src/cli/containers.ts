/**
 * What `clgw containers` prints: a table of what fits a line (name, version, state, health,
 * uptime, the last upgrade's downtime), and under each row what does not — the image reference,
 * the last upgrade, why it was rolled back, the versions not installed again.
 * Pure: no `node:*` imports.
 */

import { formatTime } from '@clgw/core/format.js';
import type { ServiceResult } from '../containers/state.js';
import type { ContainersView } from '../containers/view.js';

/** `upgraded from 1.0.0`, `installed`, `rolled back 1.1.0`, `removed`. */
export function describeResult(r: ServiceResult): string {
  switch (r.outcome) {
    case 'upgraded':
      return `upgraded${r.from ? ` from ${r.from}` : ''}`;
    case 'rolledBack':
      return `rolled back ${r.attempted ?? ''}`.trimEnd();
    default:
      return r.outcome;
  }
}

/** Milliseconds as `4.2 s`; `-` for none. */
export function seconds(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`;
}

function uptime(s: number | undefined): string {
  if (s === undefined) return '-';
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

/** A detail line under a row: the label, then the value in a column of its own. */
const LABEL = 15;
const detail = (label: string, value: string) => `  ${`${label}:`.padEnd(LABEL)}${value}`;

/**
 * The image reference under its row, never cut: on the label's line when it fits `width`; else
 * the name and tag there and the digest (`@sha256:` and 64 hex digits, too long to follow a label
 * in 80 columns) on the next line, under the value when it fits there, else indented by four; on
 * a terminal too narrow even for the name and tag after the label, both indented under it.
 */
function imageLines(image: string, width: number): string[] {
  const whole = detail('image', image);
  if (whole.length <= width) return [whole];
  const at = image.indexOf('@');
  const name = at > 0 ? image.slice(0, at) : image;
  const digest = at > 0 ? [image.slice(at)] : [];
  const first = detail('image', name);
  if (first.length > width) return ['  image:', ...[name, ...digest].map((x) => `    ${x}`)];
  const under = ' '.repeat(digest.every((d) => LABEL + 2 + d.length <= width) ? LABEL + 2 : 4);
  return [first, ...digest.map((d) => under + d)];
}

/**
 * The containers' table and notes, laid out for `width` columns (80 when not a terminal).
 * `lastRun`: with the last run's failure (not when it was just told).
 */
export function formatContainers(v: ContainersView, opts: { lastRun?: boolean; width: number }): string {
  const lines: string[] = [];
  if (!v.engine.reachable) lines.push(`container engine not reachable: ${v.engine.error?.message ?? '?'}`);
  const header = ['NAME', 'VERSION', 'STATE', 'HEALTH', 'UPTIME', 'DOWNTIME'];
  const all = v.containers.map((c) => [
    c.service,
    c.version ?? '-',
    c.state,
    c.health,
    uptime(c.uptimeSeconds),
    seconds(c.last?.downtimeMs),
  ]);
  const table = (columns: number) => {
    const rows = [header, ...all].map((r) => r.slice(0, columns));
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    return rows.map((r) =>
      r
        .map((x, i) => x.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
  };
  // On a terminal too narrow for the table, the downtime moves to the last upgrade's line.
  let rows = table(header.length);
  const downtimeColumn = rows.every((r) => r.length <= opts.width);
  if (!downtimeColumn) rows = table(header.length - 1);
  if (all.length === 0) lines.push('no service containers');
  else {
    lines.push(rows[0]!);
    for (const [i, c] of v.containers.entries()) {
      lines.push(rows[i + 1]!);
      if (c.image) lines.push(...imageLines(c.image, opts.width));
      if (c.last) {
        const downtime =
          !downtimeColumn && c.last.downtimeMs !== undefined
            ? `, downtime ${seconds(c.last.downtimeMs)}`
            : '';
        lines.push(detail('last upgrade', `${describeResult(c.last)} (${formatTime(c.last.at)})${downtime}`));
      }
      if (c.last?.outcome === 'rolledBack' && c.last.error) lines.push(detail('error', c.last.error.message));
      if (c.rejected.length)
        lines.push(
          detail(
            'failed here',
            `${c.rejected.join(', ')}: not installed again automatically (clgw update --containers --force)`,
          ),
        );
    }
  }
  if (v.running) lines.push('a container upgrade is running');
  else if (opts.lastRun !== false && v.lastRun?.outcome === 'failed')
    lines.push(`last run failed: ${v.lastRun.error?.code}: ${v.lastRun.error?.message}`);
  return lines.join('\n');
}
