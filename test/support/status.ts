import type { Status } from '../../agent/src/status.js';

/** A live status of an idle virtual appliance on 1.0.0 (DHCP); `over` replaces fields. Shared by the console and portal tests. */
export function sampleStatus(over: Partial<Status> = {}): Status {
  return {
    source: 'agent',
    state: 'idle',
    critical: false,
    phase: null,
    calls: null,
    progress: null,
    error: null,
    result: null,
    check: null,
    nextWindow: null,
    target: null,
    bootedSlot: 'A',
    gatewayVersion: '1.0.0',
    osPatchLevel: '2026-11-02',
    highestVersion: '1.0.0',
    platform: 'virtual',
    order: ['A', 'B'],
    slots: {
      A: { version: '1.0.0', ok: true, try: false, booted: true },
      B: { version: null, ok: false, try: false, booted: false },
    },
    bootEnvironment: { readable: true, recoveryRequested: false },
    containers: {},
    ssh: { enabled: false, expiresAt: null, secondsLeft: null, account: null, principal: null },
    diagnostics: null,
    profile: null,
    network: {
      settings: { hostname: 'cloudlink-gateway', ipv4: { mode: 'dhcp' } },
      source: 'default',
      summary: 'DHCP',
    },
    firstBoot: null,
    alarms: [],
    updatedAt: null,
    now: '2026-12-05T10:00:00.000Z',
    ...over,
  };
}
