/**
 * The lab image's memory log (issue #21, point 5): what `usr/lib/clgw-lab/memory.sh`
 * (image/lab/memory.sh, installed by image/src/build/tree.ts) appends to the shared directory every second — a boot, its uptime,
 * MemAvailable and the PSS of each process in a clgw-* unit — read back and summed up for the
 * end-to-end run's report.
 */

export interface MemorySample {
  boot: string;
  /** Seconds since that boot. */
  up: number;
  availableKiB: number;
  /** PSS per clgw unit (its processes together, children included), in KiB. */
  units: Map<string, number>;
  /** All clgw units' processes together, in KiB. */
  totalKiB: number;
}

/** One line of the log; undefined for a line cut short (a power cut in the middle of an append). */
export function parseMemoryLine(line: string): MemorySample | undefined {
  const fields = line.trim().split(/\s+/);
  const sample: MemorySample = {
    boot: '',
    up: Number.NaN,
    availableKiB: Number.NaN,
    units: new Map(),
    totalKiB: 0,
  };
  for (const field of fields) {
    const eq = field.lastIndexOf('=');
    if (eq < 0) return undefined;
    const key = field.slice(0, eq);
    const value = field.slice(eq + 1);
    if (key === 'boot') sample.boot = value;
    else if (key === 'up') sample.up = Number(value);
    else if (key === 'MemAvailable') sample.availableKiB = Number(value);
    else {
      // unit/command/pid=kB
      const unit = key.split('/')[0];
      const kib = Number(value);
      if (!unit || !/^\d+$/.test(value)) return undefined;
      sample.units.set(unit, (sample.units.get(unit) ?? 0) + kib);
      sample.totalKiB += kib;
    }
  }
  if (!sample.boot || !Number.isFinite(sample.up) || !Number.isFinite(sample.availableKiB)) return undefined;
  return sample;
}

export function parseMemoryLog(text: string): MemorySample[] {
  return text
    .split('\n')
    .map(parseMemoryLine)
    .filter((s): s is MemorySample => s !== undefined);
}

export interface MemorySummary {
  samples: number;
  /** The sample with the most PSS in clgw processes. */
  peak: MemorySample;
  /** Each unit's own highest PSS (not necessarily at the same moment), KiB. */
  unitMaxKiB: Map<string, number>;
  minAvailableKiB: number;
}

export function summarize(samples: readonly MemorySample[]): MemorySummary | undefined {
  const [first] = samples;
  if (!first) return undefined;
  let peak = first;
  let minAvailableKiB = first.availableKiB;
  const unitMaxKiB = new Map<string, number>();
  for (const s of samples) {
    if (s.totalKiB > peak.totalKiB) peak = s;
    minAvailableKiB = Math.min(minAvailableKiB, s.availableKiB);
    for (const [unit, kib] of s.units) unitMaxKiB.set(unit, Math.max(unitMaxKiB.get(unit) ?? 0, kib));
  }
  return { samples: samples.length, peak, unitMaxKiB, minAvailableKiB };
}

const mib = (kib: number) => (kib / 1024).toFixed(1);

/** Units by name, without their `clgw-` prefix: "agent 31.2, console-home 20.4". */
function units(map: ReadonlyMap<string, number>): string {
  return [...map]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([unit, kib]) => `${unit.replace(/^clgw-/, '')} ${mib(kib)}`)
    .join(', ');
}

/** A summary as the run prints it (MiB). */
export function describeMemory(s: MemorySummary): string {
  return [
    `clgw processes' PSS at most ${mib(s.peak.totalKiB)} MiB (${units(s.peak.units)})`,
    `each unit's own highest: ${units(s.unitMaxKiB)}`,
    `MemAvailable at least ${mib(s.minAvailableKiB)} MiB`,
    `${s.samples} samples, 1 s apart`,
  ].join('; ');
}
