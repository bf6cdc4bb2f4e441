import type { Status } from '../../../agent/src/status.js';

/** A settled virtual appliance on 1.0.0 (DHCP), as the live agent reports it; `over` replaces fields. */
export function statusOf(over: Partial<Status> = {}): Status {
  const base = {
    source: 'agent',
    state: 'idle',
    critical: false,
    phase: null,
    progress: null,
    error: null,
    result: null,
    check: null,
    target: null,
    bootedSlot: 'A',
    gatewayVersion: '1.0.0',
    highestVersion: '1.0.0',
    platform: 'virtual',
    order: ['A', 'B'],
    slots: {
      A: { version: '1.0.0', ok: true, try: false, booted: true },
      B: { version: null, ok: false, try: false, booted: false },
    },
    bootEnvironment: { readable: true, recoveryRequested: false },
    containers: {},
    profile: null,
    network: {
      settings: { hostname: 'cloudlink-gateway', ipv4: { mode: 'dhcp' } },
      source: 'default',
      summary: 'DHCP',
    },
    alarms: [],
    updatedAt: null,
  };
  // Cast: fields the Status type gains later (filled by the agent) need not break these fixtures.
  return { ...(base as unknown as Status), ...over };
}
