import {
  APPLIANCE_ID_ALPHABET,
  applianceIdFrom,
  appliancePrincipal,
  decidePrincipal,
  isApplianceId,
  parseSshCertificate,
} from '@clgw/core/ssh/principal.js';
import { describe, expect, it } from 'vitest';
import { describeSsh, sshBanner, sshSupportLine } from '../../../agent/src/ssh/view.js';

/** An OpenSSH certificate blob (PROTOCOL.certkeys) with a dummy key and signature. */
function certBlob(o: {
  type?: string;
  certType?: number;
  principals?: string[];
  after?: bigint;
  before?: bigint;
  trailing?: boolean;
}): Uint8Array {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    parts.push(b);
  };
  const u64 = (n: bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(n);
    parts.push(b);
  };
  const str = (s: string | Buffer) => {
    const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
    u32(b.length);
    parts.push(b);
  };
  str(o.type ?? 'ssh-ed25519-cert-v01@openssh.com');
  str(Buffer.alloc(32, 1)); // nonce
  str(Buffer.alloc(32, 2)); // public key
  u64(42n);
  u32(o.certType ?? 1);
  str('jdoe');
  const list: Buffer[] = [];
  for (const p of o.principals ?? ['clgw-support', 'appliance-k3m9x2pq7rtw']) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(Buffer.byteLength(p));
    list.push(len, Buffer.from(p));
  }
  str(Buffer.concat(list));
  u64(o.after ?? 1_800_000_000n);
  u64(o.before ?? 1_800_000_000n + 3600n);
  for (const _ of ['critical', 'extensions', 'reserved', 'signature key', 'signature']) str('');
  if (o.trailing) parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

const request = (blob: Uint8Array, over: Partial<Parameters<typeof decidePrincipal>[0]> = {}) => ({
  user: 'support',
  account: 'support',
  applianceId: 'k3m9x2pq7rtw',
  keyType: 'ssh-ed25519-cert-v01@openssh.com',
  blob,
  ...over,
});

describe('appliance ID', () => {
  it('12 characters of an alphabet without i, l, o, u; every byte value maps evenly', () => {
    expect(APPLIANCE_ID_ALPHABET).toHaveLength(32);
    expect(APPLIANCE_ID_ALPHABET).not.toMatch(/[ilou]/);
    const id = applianceIdFrom(Uint8Array.from({ length: 12 }, (_, i) => i * 21));
    expect(id).toBe('0nazm9yk8xj7');
    expect(isApplianceId(id)).toBe(true);
    expect(appliancePrincipal(id)).toBe('appliance-0nazm9yk8xj7');
    for (const bad of ['', 'k3m9x2pq7rt', 'k3m9x2pq7rtwx', 'K3M9X2PQ7RTW', 'k3m9x2pq7rti', 'k3m9x2pq7r w'])
      expect(isApplianceId(bad)).toBe(false);
    expect(() => applianceIdFrom(new Uint8Array(11))).toThrow(RangeError);
  });
});

describe('principal decision', () => {
  it('a support certificate for this appliance, an hour: its principal', () => {
    expect(parseSshCertificate(certBlob({}))).toMatchObject({
      serial: 42n,
      certType: 1,
      keyId: 'jdoe',
      principals: ['clgw-support', 'appliance-k3m9x2pq7rtw'],
    });
    expect(decidePrincipal(request(certBlob({})))).toEqual({
      accept: true,
      principal: 'appliance-k3m9x2pq7rtw',
    });
  });

  it('24 h plus the slack is the longest accepted', () => {
    const at = (seconds: bigint) => decidePrincipal(request(certBlob({ before: 1_800_000_000n + seconds })));
    expect(at(24n * 3600n + 600n).accept).toBe(true);
    expect(at(24n * 3600n + 601n)).toEqual({
      accept: false,
      reason: 'the certificate is valid for 24 h 10 min, more than 24 h',
    });
    expect(decidePrincipal(request(certBlob({ after: 0n, before: 2n ** 64n - 1n })))).toEqual({
      accept: false,
      reason: 'the certificate is valid for ever, more than 24 h',
    });
    expect(decidePrincipal(request(certBlob({ after: 5n, before: 4n }))).accept).toBe(false);
  });

  it.each([
    [
      'another appliance',
      request(certBlob({ principals: ['clgw-support', 'appliance-zzzzzzzzzzzz'] })),
      'does not name appliance-k3m9x2pq7rtw',
    ],
    ['no role', request(certBlob({ principals: ['appliance-k3m9x2pq7rtw'] })), 'does not name clgw-support'],
    ['a host certificate', request(certBlob({ certType: 2 })), 'not a user certificate'],
    ['another account', request(certBlob({}), { user: 'root' }), 'user root is not support'],
    ['no appliance ID', request(certBlob({}), { applianceId: undefined }), 'no ID yet'],
    ['a malformed ID', request(certBlob({}), { applianceId: 'x' }), 'no ID yet'],
    ['a plain key', request(certBlob({}), { keyType: 'ssh-ed25519' }), 'no certificate'],
    ['truncated', request(certBlob({}).subarray(0, 60)), 'truncated'],
    ['trailing bytes', request(certBlob({ trailing: true })), 'trailing bytes'],
    [
      'an unknown type',
      request(certBlob({ type: 'ssh-foo-cert-v01@openssh.com' })),
      'not an OpenSSH certificate type',
    ],
    ['oversized', request(new Uint8Array(70_000)), 'over 65536 bytes'],
  ])('%s: refused', (_name, req, reason) => {
    const d = decidePrincipal(req);
    expect(d.accept).toBe(false);
    expect(d.accept ? '' : d.reason).toContain(reason);
  });
});

describe('SSH view', () => {
  const state = {
    enabledAt: '2026-11-21T10:00:00.000Z',
    expiresAt: '2026-11-22T10:00:00.000Z',
    account: 'support',
    principal: 'appliance-k3m9x2pq7rtw',
  };
  const now = Date.parse('2026-11-21T10:00:00Z');

  it('on only once sshd answered (phase on, or no phase from before there was one)', () => {
    expect(describeSsh({ ...state, phase: 'starting' }, now).enabled).toBe(false);
    expect(describeSsh({ ...state, phase: 'on' }, now).enabled).toBe(true);
    expect(describeSsh(state, now).enabled).toBe(true);
    expect(describeSsh(state, Date.parse(state.expiresAt)).enabled).toBe(false);
  });

  it('the banner and the support line fit the 78 columns of the console', () => {
    const view = describeSsh({ ...state, phase: 'on' }, now + 60_000);
    expect(sshBanner(view, now + 60_000)).toBe(
      'SSH access is ON until 2026-11-22 10:00 UTC (23 h 59 min left)',
    );
    expect(sshSupportLine(view)).toBe(
      'For support: user support, certificate principal appliance-k3m9x2pq7rtw',
    );
    for (const line of [sshBanner(view, now + 60_000), sshSupportLine(view)])
      expect(line?.length).toBeLessThanOrEqual(78);
    expect(sshSupportLine(describeSsh(undefined, now))).toBeUndefined();
  });
});
