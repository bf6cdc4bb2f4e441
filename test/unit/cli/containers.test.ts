import { describe, expect, it } from 'vitest';
import { formatContainers } from '../../../agent/src/cli/containers.js';
import type { ContainersView } from '../../../agent/src/containers/view.js';

const REF = `registry.example/mitel/cloudlink-freeswitch:1.1.0.01-296@sha256:${'0123456789abcdef'.repeat(4)}`;
const view: ContainersView = {
  engine: { reachable: true },
  running: false,
  containers: [
    {
      service: 'freeswitch',
      name: 'clgw-freeswitch',
      version: '1.1.0.01-296',
      image: REF,
      state: 'running',
      health: 'healthy',
      uptimeSeconds: 600,
      rejected: [],
      last: {
        outcome: 'upgraded',
        version: '1.1.0.01-296',
        from: '1.0.0.00-180',
        at: '2025-11-21T03:14:07.123Z',
        downtimeMs: 4200,
      },
    },
  ],
};

describe('clgw containers layout', () => {
  it('at 80 columns: the row, then the image name and its digest on lines of their own', () => {
    const lines = formatContainers(view, { width: 80 }).split('\n');
    expect(lines).toEqual([
      'NAME        VERSION       STATE    HEALTH   UPTIME  DOWNTIME',
      'freeswitch  1.1.0.01-296  running  healthy  10 min  4.2 s',
      '  image:         registry.example/mitel/cloudlink-freeswitch:1.1.0.01-296',
      `    @sha256:${'0123456789abcdef'.repeat(4)}`,
      '  last upgrade:  upgraded from 1.0.0.00-180 (2025-11-21 03:14 UTC)',
    ]);
  });

  it('wider, the reference stays whole on one line; the digest under the value when it fits', () => {
    expect(formatContainers(view, { width: 160 }).split('\n')[2]).toBe(`  image:         ${REF}`);
    const at100 = formatContainers(view, { width: 100 }).split('\n');
    expect(at100[3]).toBe(`${' '.repeat(17)}@sha256:${'0123456789abcdef'.repeat(4)}`);
  });

  it('narrower than the table, the downtime moves to the last upgrade; nothing is dropped', () => {
    const lines = formatContainers(view, { width: 56 }).split('\n');
    expect(lines[0]).toBe('NAME        VERSION       STATE    HEALTH   UPTIME');
    expect(lines[1]).toBe('freeswitch  1.1.0.01-296  running  healthy  10 min');
    expect(lines.slice(2, 5)).toEqual([
      '  image:',
      '    registry.example/mitel/cloudlink-freeswitch:1.1.0.01-296',
      `    @sha256:${'0123456789abcdef'.repeat(4)}`,
    ]);
    expect(lines[5]).toBe(
      '  last upgrade:  upgraded from 1.0.0.00-180 (2025-11-21 03:14 UTC), downtime 4.2 s',
    );
  });

  it('says when there is no container, and a failed last run unless it was just told', () => {
    const none: ContainersView = {
      engine: { reachable: true },
      running: false,
      containers: [],
      lastRun: {
        at: '2025-11-21T03:16:07.123Z',
        outcome: 'failed',
        error: { code: 'ENGINE_UNAVAILABLE', message: 'x', transient: true },
      },
    };
    expect(formatContainers(none, { width: 80 })).toBe(
      'no service containers\nlast run failed: ENGINE_UNAVAILABLE: x',
    );
    expect(formatContainers(none, { width: 80, lastRun: false })).toBe('no service containers');
  });
});
