import { describe, expect, it } from 'vitest';
import { portalView } from '../../../portal/src/view.js';
import { sampleStatus } from '../../support/status.js';

const MiB = 1024 * 1024;
const ctx = { localAddress: '192.0.2.10', port: 80 };
const downloading = (sources: { downloaded?: number; reused?: number }) =>
  sampleStatus({
    state: 'downloading',
    target: { version: '1.1.0', slot: 'B' },
    progress: {
      phase: 'downloading 1.1.0',
      bytes: 300 * MiB,
      total: 600 * MiB,
      rate: 20 * MiB,
      startedAt: 0,
      percent: 50,
      ...sources,
    },
  });

describe('portal: progress of an adaptive update', () => {
  it('says how much of the update was already on the gateway', () => {
    const v = portalView({ status: downloading({ downloaded: 12 * MiB, reused: 288 * MiB }) }, ctx);
    expect(v.fields.updateBytes).toBe('300 MiB of 600 MiB (288 MiB already on the gateway)');
  });

  it('says nothing more when nothing was reused (a streamed download, or verifying)', () => {
    expect(
      portalView({ status: downloading({ downloaded: 300 * MiB, reused: 0 }) }, ctx).fields.updateBytes,
    ).toBe('300 MiB of 600 MiB');
    expect(portalView({ status: downloading({}) }, ctx).fields.updateBytes).toBe('300 MiB of 600 MiB');
  });
});
