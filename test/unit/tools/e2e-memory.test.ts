import { describe, expect, it } from 'vitest';
import { describeMemory, parseMemoryLine, parseMemoryLog, summarize } from '../../qemu/memory.js';

// Lines as image/lab/memory.sh appends them inside the lab image.
const boot = 'boot=1e13ea8b-2de2-41cd-9529-02b7f9062629';
const log = [
  `${boot} up=41.20 MemAvailable=700000 clgw-firstboot/node/301=30720`,
  `${boot} up=90.50 MemAvailable=600000 clgw-agent/node/412=40960 clgw-agent/podman/530=10240 clgw-portal/node/420=12288 clgw-console-home/node/433=20480`,
  `${boot} up=91.50 MemAvailable=650000 clgw-agent/node/412=30720 clgw-console-home/node/433=24576`,
  // A line cut short by a power cut.
  `${boot} up=92.50 MemAvail`,
  '',
].join('\n');

describe('the e2e run’s memory log', () => {
  it('sums each unit’s processes and all of them', () => {
    const s = parseMemoryLine(log.split('\n')[1]!);
    expect(s?.up).toBe(90.5);
    expect(s?.availableKiB).toBe(600000);
    expect(Object.fromEntries(s?.units ?? [])).toEqual({
      'clgw-agent': 51200,
      'clgw-portal': 12288,
      'clgw-console-home': 20480,
    });
    expect(s?.totalKiB).toBe(83968);
  });

  it('skips a line cut short, and finds the peak, each unit’s highest and the lowest MemAvailable', () => {
    const samples = parseMemoryLog(log);
    expect(samples).toHaveLength(3);
    const summary = summarize(samples);
    expect(summary?.peak.up).toBe(90.5);
    expect(summary?.unitMaxKiB.get('clgw-console-home')).toBe(24576);
    expect(summary?.minAvailableKiB).toBe(600000);
    expect(describeMemory(summary!)).toBe(
      "clgw processes' PSS at most 82.0 MiB (agent 50.0, console-home 20.0, portal 12.0); " +
        "each unit's own highest: agent 50.0, console-home 24.0, firstboot 30.0, portal 12.0; " +
        'MemAvailable at least 585.9 MiB; 3 samples, 1 s apart',
    );
  });

  it('has nothing to say without samples', () => {
    expect(summarize([])).toBeUndefined();
  });
});
