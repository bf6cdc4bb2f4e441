import { ERROR_CODES } from '@clgw/core/errors.js';
import { firstBootView } from '@clgw/core/firstboot/report.js';
import { formatBytes, formatTime, portalUrl } from '@clgw/core/format.js';
import { describe, expect, it } from 'vitest';
import {
  formatDuration,
  formatEta,
  formatPercent,
  formatRate,
  modeOf,
  plainAddress,
  plainError,
  portalView,
} from '../../../portal/src/view.js';
import { sampleStatus } from '../../support/status.js';

const ctx = { localAddress: '192.0.2.10', port: 80 };

describe('formatting', () => {
  it('bytes in binary units with three significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(25.5 * 1024 * 1024)).toBe('25.5 MiB');
    expect(formatBytes(600 * 1024 * 1024)).toBe('600 MiB');
    expect(formatBytes(-1)).toBe('unknown');
    expect(formatRate(4.2 * 1024 * 1024)).toBe('4.20 MiB/s');
    expect(formatRate(0)).toBe('—');
  });

  it('durations, ETA and percent', () => {
    expect(formatDuration(45.4)).toBe('45 s');
    expect(formatDuration(125)).toBe('2 min 05 s');
    expect(formatDuration(4800)).toBe('1 h 20 min');
    expect(formatEta(0, 1000, 0)).toBe('calculating…');
    expect(formatEta(500, 1000, 10)).toBe('about 50 s');
    expect(formatEta(1000, 1000, 10)).toBe('done');
    expect(formatPercent(0, 0)).toBe('0 %');
    expect(formatPercent(421, 1000)).toBe('42 %');
    // Never 100 % before the last byte.
    expect(formatPercent(999_999, 1_000_000)).toBe('99 %');
    expect(formatPercent(1000, 1000)).toBe('100 %');
  });

  it('times, URLs and addresses', () => {
    expect(formatTime('2025-11-21T09:12:33.123Z')).toBe('2025-11-21 09:12 UTC');
    expect(formatTime(null)).toBe('unknown');
    expect(portalUrl('cloudlink.local', 80)).toBe('http://cloudlink.local/');
    expect(portalUrl('192.0.2.10', 8080)).toBe('http://192.0.2.10:8080/');
    expect(portalUrl('fe80::1', 80)).toBe('http://[fe80::1]/');
    expect(plainAddress('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(plainAddress('::1')).toBe('::1');
  });
});

describe('the mode follows the update state', () => {
  it.each([
    ['idle', 'normal'],
    ['committed', 'normal'],
    ['rolledBack', 'normal'],
    ['checking', 'updating'],
    ['downloading', 'updating'],
    ['switching', 'updating'],
    ['rebooting', 'updating'],
    ['confirming', 'updating'],
    ['failed', 'error'],
  ] as const)('%s → %s', (state, mode) => {
    expect(modeOf({ state })).toBe(mode);
  });
});

describe('portalView', () => {
  it('normal: versions, address, URLs; what is not known yet says so', () => {
    const v = portalView({ status: sampleStatus() }, ctx);
    expect(v.mode).toBe('normal');
    expect(v.documentTitle).toBe('CloudLink Gateway');
    expect(v.fields).toMatchObject({
      gatewayOs: '1.0.0',
      cloudSoftware: 'not installed yet',
      voipSoftware: 'not installed yet',
      osPatchLevel: 'unknown',
      profile: 'unknown',
      diagnostics: 'not run',
      ip: '192.0.2.10',
      hostname: 'cloudlink-gateway',
      urlLocal: 'http://cloudlink.local/',
      urlIp: 'http://192.0.2.10/',
      lastUpdate: 'none yet',
      lastCheck: 'not yet',
      updatePercent: '',
      errorTitle: '',
    });
    expect(v.show).toMatchObject({ updating: false, error: false, retry: false, factoryReset: false });
    expect(v.percent).toBeNull();
  });

  it('a check that cannot reach the server: a warning panel, not Update Error', () => {
    const check = {
      outcome: 'failed' as const,
      version: '',
      at: '2026-12-05T03:00:00Z',
      message: 'no answer from 10.0.0.9:443 within 30 s',
      error: {
        code: 'TIMED_OUT' as const,
        message: 'no answer from 10.0.0.9:443 within 30 s',
        transient: true,
      },
    };
    const v = portalView({ status: sampleStatus({ check }) }, ctx);
    expect(v.mode).toBe('normal');
    expect(v.show).toMatchObject({ checkWarning: true, error: false, retry: false, reboot: false });
    expect(v.fields.checkWarning).toBe(
      'Cannot reach the download server: no answer from 10.0.0.9:443 within 30 s — the gateway keeps running 1.0.0 and will try again at its next start',
    );
    expect(v.fields.lastCheck).toMatch(
      /^Cannot reach the download server: .* \(checked 2026-12-05 03:00 UTC\)$/,
    );
    const quiet = portalView({ status: sampleStatus() }, ctx);
    expect(quiet.show.checkWarning).toBe(false);
    expect(quiet.fields.checkWarning).toBe('');
  });

  it('the deployment row: what became of the OVF settings, hidden where there were none', () => {
    const firstBoot = firstBootView({
      at: '2026-12-05T09:00:00Z',
      outcome: 'refused',
      transport: 'guestinfo',
      reasons: ["cl.netmask0: '33': prefix length 33 is out of range (1-32); falling back to DHCP"],
    });
    const v = portalView({ status: sampleStatus({ firstBoot }) }, ctx);
    expect(v.fields.deployment).toBe('Deployed settings refused: cl.netmask0; using DHCP');
    expect(v.show.deployment).toBe(true);
    const none = firstBootView({
      at: '2026-12-05T09:00:00Z',
      outcome: 'none',
      transport: 'none',
      reasons: [],
    });
    for (const status of [sampleStatus(), sampleStatus({ firstBoot: none })]) {
      const quiet = portalView({ status }, ctx);
      expect(quiet.fields.deployment).toBe('');
      expect(quiet.show.deployment).toBe(false);
    }
  });

  it('the optional sources fill versions, profile and diagnostics', () => {
    const v = portalView(
      {
        status: sampleStatus(),
        versions: { cloudSoftware: '1.1.0.01-296', voipSoftware: '111', osPatchLevel: '2026-11-20' },
        profile: { name: 'small', detail: '25 calls, RTP 65336-65534' },
        diagnostics: {
          at: '2025-11-21T09:00:00Z',
          checks: [
            { name: 'DNS udp/53', status: 'pass' },
            { name: 'STUN udp/3478', status: 'fail', message: 'no answer from stun.example:3478' },
            { name: 'NTP udp/123', status: 'warn', message: 'offset 2 s' },
          ],
        },
        addresses: ['10.0.0.5'],
      },
      ctx,
    );
    expect(v.fields).toMatchObject({
      cloudSoftware: '1.1.0.01-296',
      voipSoftware: '111',
      osPatchLevel: '2026-11-20',
      profile: 'small (25 calls, RTP 65336-65534)',
      diagnostics: '1 of 3 checks failed (2025-11-21 09:00 UTC)',
      ip: '10.0.0.5',
    });
    expect(v.lists.diagnostics).toEqual([
      { text: 'DNS udp/53: passed', state: 'pass' },
      { text: 'STUN udp/3478: FAILED — no answer from stun.example:3478', state: 'fail' },
      { text: 'NTP udp/123: warning — offset 2 s', state: 'warn' },
    ]);
    expect(v.show.diagnosticsList).toBe(true);
  });

  it('a static address is the address shown, with the port when it is not 80', () => {
    const status = sampleStatus({
      network: {
        settings: {
          hostname: 'gw1',
          ipv4: {
            mode: 'static',
            address: '10.1.2.3',
            prefixLength: 24,
            gateway: '10.1.2.1',
            dns: ['10.1.2.1'],
          },
        },
        source: 'saved',
        summary: 'static 10.1.2.3/24 via 10.1.2.1, DNS 10.1.2.1',
      },
    });
    const v = portalView({ status }, { localAddress: '127.0.0.1', port: 8080 });
    expect(v.fields).toMatchObject({
      ip: '10.1.2.3',
      hostname: 'gw1',
      urlIp: 'http://10.1.2.3:8080/',
      urlLocal: 'http://cloudlink.local:8080/',
      network: 'static 10.1.2.3/24 via 10.1.2.1, DNS 10.1.2.1',
    });
  });

  it('an update in progress: phase, percent, bytes, rate, ETA', () => {
    const MiB = 1024 * 1024;
    const status = sampleStatus({
      state: 'downloading',
      target: { version: '1.1.0', slot: 'B' },
      progress: {
        phase: 'downloading 1.1.0',
        bytes: 150 * MiB,
        total: 600 * MiB,
        rate: 1.5 * MiB,
        startedAt: 0,
        percent: 25,
      },
    });
    const v = portalView({ status }, ctx);
    expect(v.mode).toBe('updating');
    expect(v.documentTitle).toBe('System update in progress — CloudLink Gateway');
    expect(v.fields).toMatchObject({
      updatePhase: 'Downloading the update',
      updateTarget: 'to release 1.1.0',
      updatePercent: '25 %',
      updateBytes: '150 MiB of 600 MiB',
      updateRate: '1.50 MiB/s',
      updateEta: 'about 5 min 00 s',
    });
    expect(v.fields.updateNote).toContain('Do not switch the gateway off');
    expect(v.percent).toBe(25);
    expect(v.show).toMatchObject({ updating: true, progress: true, error: false });
  });

  it('checking and the critical step show no bar; the critical step warns', () => {
    const checking = portalView({ status: sampleStatus({ state: 'checking' }) }, ctx);
    expect(checking.show.progress).toBe(false);
    expect(checking.fields.updatePhase).toBe('Checking for an update');
    const critical = portalView({ status: sampleStatus({ state: 'switching', critical: true }) }, ctx);
    expect(critical.fields.updateNote).toBe('Critical step: do not switch the gateway off now.');
  });

  it('an update error: plain words, the detail, and the options (Factory Reset on physical only)', () => {
    const error = {
      code: 'DNS_LOOKUP_FAILED' as const,
      message: 'lookup download.example on 10.0.0.53:53: timed out',
      transient: true,
    };
    const virtual = portalView({ status: sampleStatus({ state: 'failed', error }) }, ctx);
    expect(virtual.mode).toBe('error');
    expect(virtual.documentTitle).toBe('Update Error — CloudLink Gateway');
    expect(virtual.fields.errorTitle).toContain('DNS lookup failed');
    expect(virtual.fields.errorAdvice).toContain('Retry');
    expect(virtual.fields.errorDetail).toBe(
      'lookup download.example on 10.0.0.53:53: timed out (DNS_LOOKUP_FAILED)',
    );
    expect(virtual.show).toMatchObject({ error: true, retry: true, reboot: true, factoryReset: false });
    const physical = portalView(
      { status: sampleStatus({ state: 'failed', error, platform: 'physical' }) },
      ctx,
    );
    expect(physical.show.factoryReset).toBe(true);
  });

  it('every error code has plain words', () => {
    for (const code of ERROR_CODES) {
      const p = plainError({ code });
      expect(p.title.length, code).toBeGreaterThan(10);
      expect(p.advice.length, code).toBeGreaterThan(10);
    }
    expect(plainError(null).title).toBe('The update failed.');
    expect(plainError({ code: 'HTTP_STATUS', details: { status: 404 } }).title).toContain('HTTP 404');
    expect(plainError({ code: 'HTTP_STATUS', details: { status: 503 } }).advice).toContain(
      'usually temporary',
    );
  });

  it('last update, last check, services and an active alarm', () => {
    const status = sampleStatus({
      result: {
        outcome: 'rolledBack',
        version: '1.2.0',
        at: '2025-11-20T02:10:00Z',
        message: 'health check failed: cloudlink-tunnel.service failed to start',
      },
      check: { outcome: 'upToDate', version: '1.1.0', at: '2025-11-21T02:00:00Z', message: '' },
      containers: {
        tunnel: { outcome: 'upgraded', version: '2.0.0', from: '1.0.0', at: '2025-11-21T02:01:00Z' },
        micloud: { outcome: 'rolledBack', version: '1.0.0', attempted: '1.1.0', at: '2025-11-21T02:02:00Z' },
      },
      alarms: [
        { code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED', message: 'old one', raisedAt: 'x', clearedAt: 'y' },
        { code: 'CLGW_ALARM_CRITICAL_PHASE_FAILED', message: 'power cut while switching', raisedAt: 'z' },
      ],
    });
    const v = portalView({ status }, ctx);
    expect(v.fields.lastUpdate).toBe(
      'Rolled back from 1.2.0 on 2025-11-20 02:10 UTC: health check failed: cloudlink-tunnel.service failed to start',
    );
    expect(v.fields.lastCheck).toBe('Up to date (checked 2025-11-21 02:00 UTC)');
    expect(v.lists.services).toEqual([
      { text: 'tunnel 2.0.0', state: 'info' },
      { text: 'micloud 1.0.0 runs (the upgrade to 1.1.0 was rolled back)', state: 'warn' },
    ]);
    // A first install rolled back leaves nothing running: said so, not 'unknown'.
    const first = portalView(
      {
        status: sampleStatus({
          containers: { tunnel: { outcome: 'rolledBack', attempted: '1.0.0', at: '2025-11-21T02:00:00Z' } },
        }),
      },
      ctx,
    );
    expect(first.lists.services).toEqual([
      { text: 'tunnel: not running (installing 1.0.0 failed and was undone)', state: 'warn' },
    ]);
    expect(v.show.alarm).toBe(true);
    expect(v.fields.alarm).toBe('CLGW_ALARM_CRITICAL_PHASE_FAILED: power cut while switching');
    // A container upgrade waiting for calls before it restarts the voice service leads the list.
    const waiting = portalView(
      {
        status: sampleStatus({
          calls: { for: 'containers', active: 2, deadline: '2025-11-21T05:00:00Z' },
          phase:
            'Waiting for 2 active calls to end before restarting the voice service — at the latest 05:00 UTC',
          containers: { tunnel: { outcome: 'upgraded', version: '2.0.0', at: '2025-11-21T02:01:00Z' } },
        }),
      },
      ctx,
    );
    expect(waiting.lists.services).toEqual([
      {
        text: 'Waiting for 2 active calls to end before restarting the voice service — at the latest 05:00 UTC.',
        state: 'info',
      },
      { text: 'tunnel 2.0.0', state: 'info' },
    ]);
  });

  it('is plain data: the same view serialises to the same JSON', () => {
    const a = JSON.stringify(portalView({ status: sampleStatus() }, ctx));
    const b = JSON.stringify(portalView({ status: sampleStatus() }, ctx));
    expect(a).toBe(b);
    expect(JSON.parse(a)).toEqual(portalView({ status: sampleStatus() }, ctx));
  });
});
