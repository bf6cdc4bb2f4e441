/**
 * The last check in words: a check that could not be done is a warning naming its cause and
 * what happens next, told apart from a failed update, on every view.
 */
import { describe, expect, it } from 'vitest';
import { checkWarning, describeCheck } from '../../../agent/src/check-words.js';
import type { CheckResult } from '../../../agent/src/machine/journal.js';
import { sampleStatus } from '../../support/status.js';

const at = '2026-12-05T03:00:00.000Z';
const refused: CheckResult = {
  outcome: 'failed',
  version: '',
  at,
  message: 'connection to 10.0.0.9:443 refused',
  error: { code: 'CONNECTION_REFUSED', message: 'connection to 10.0.0.9:443 refused', transient: true },
};

describe('describeCheck', () => {
  it('the server unreachable: the cause, what runs, when it tries again', () => {
    const s = sampleStatus({
      gatewayVersion: '1.1.0',
      check: refused,
      nextWindow: { at: '2026-12-06T02:13:00Z', local: '2026-12-06 03:13 Europe/Berlin' },
    });
    expect(describeCheck(s)).toEqual({
      severity: 'warn',
      text: 'Cannot reach the download server: connection to 10.0.0.9:443 refused — the gateway keeps running 1.1.0 and will try again at 2026-12-06 03:13 Europe/Berlin',
    });
    expect(describeCheck({ ...s, nextWindow: null })?.text).toMatch(/will try again at its next start$/);
  });

  it('a document refused is said so, not as an unreachable server', () => {
    const check: CheckResult = {
      ...refused,
      message: 'compat.yaml.sig does not verify',
      error: { code: 'SIGNATURE_INVALID', message: 'compat.yaml.sig does not verify', transient: false },
    };
    expect(describeCheck(sampleStatus({ check }))?.text).toMatch(
      /^The download server's release information was refused: compat\.yaml\.sig does not verify — the gateway keeps running 1\.0\.0/,
    );
  });

  it('a check given up after the agent stopped in it is said so, and when it is tried again', () => {
    const message =
      'the check of compat.yaml was interrupted 3 times in a row (the agent stopped during it each time), so it was given up';
    const check: CheckResult = {
      ...refused,
      message,
      error: { code: 'CHECK_INTERRUPTED', message, transient: false, details: { attempts: 3 } },
    };
    expect(describeCheck(sampleStatus({ check, nextWindow: null }))).toEqual({
      severity: 'warn',
      text: `The check for updates did not finish: ${message} — the gateway keeps running 1.0.0 and will try again at its next start`,
    });
  });

  it('a check deferred for the clock names the clock alone, and when it is tried again', () => {
    const message =
      "the clock is not set (no NTP yet): update deferred; it reads 1970-01-01T00:00:12.000Z, earlier than 2025-09-30, a day before this gateway OS's packages were taken (CLGW_PATCH_LEVEL 2025-10-01)";
    const check: CheckResult = {
      ...refused,
      message,
      error: { code: 'CLOCK_NOT_SET', message, transient: true },
    };
    expect(
      describeCheck(
        sampleStatus({
          check,
          nextWindow: { at: '2026-12-06T02:13:00Z', local: '2026-12-06 03:13 Europe/Berlin' },
        }),
      ),
    ).toEqual({
      severity: 'warn',
      text: `The clock is not set (no NTP yet): update deferred; it reads 1970-01-01T00:00:12.000Z, earlier than 2025-09-30, a day before this gateway OS's packages were taken (CLGW_PATCH_LEVEL 2025-10-01) — the gateway keeps running 1.0.0 and will try again once its clock is set`,
    });
  });

  it('good outcomes are not warnings', () => {
    expect(
      describeCheck(sampleStatus({ check: { outcome: 'upToDate', version: '1.0.0', at, message: '' } })),
    ).toEqual({
      severity: 'ok',
      text: 'Up to date',
    });
    expect(describeCheck(sampleStatus())).toBeNull();
  });

  it('a release held back by a staged rollout is no warning: it says why it is not installed', () => {
    const check: CheckResult = {
      outcome: 'notOffered',
      version: '1.4.0',
      at,
      message: 'gateway OS 1.4.0 is available but not yet offered to this gateway (rollout 10 %)',
      percent: 10,
    };
    expect(describeCheck(sampleStatus({ check }))).toEqual({
      severity: 'ok',
      text: 'Release 1.4.0 is available but not yet offered to this gateway (rollout 10 %)',
    });
    expect(checkWarning(sampleStatus({ check }))).toBeNull();
  });

  it('a running release newer than the one published is kept, and said as a warning', () => {
    const message =
      'this gateway runs gateway OS 1.4.0, newer than 1.3.0 that the vendor publishes now; it keeps running it until a newer release is published';
    const check: CheckResult = { outcome: 'upToDate', version: '1.4.0', at, message, published: '1.3.0' };
    expect(describeCheck(sampleStatus({ check }))).toEqual({
      severity: 'warn',
      text: `T${message.slice(1)}`,
    });
  });

  it('a withdrawn release is a warning, whether this gateway runs it or not', () => {
    for (const message of [
      'gateway OS 1.4.0 was withdrawn by the vendor (calls drop); this gateway keeps running it until a newer release is published',
      'gateway OS 1.4.0 was withdrawn by the vendor (calls drop): not installed',
    ]) {
      const check: CheckResult = { outcome: 'withdrawn', version: '1.4.0', at, message };
      const words = { severity: 'warn', text: `G${message.slice(1)}` };
      expect(describeCheck(sampleStatus({ check }))).toEqual(words);
      expect(checkWarning(sampleStatus({ check }))).toEqual(words);
    }
  });
});

describe('checkWarning', () => {
  const failedUpdate = {
    outcome: 'failed' as const,
    version: '1.1.0',
    at: '2026-12-05T02:00:00.000Z',
    message: 'sha256 of root.img is wrong',
  };

  it('shown while settled; not while an update runs', () => {
    expect(checkWarning(sampleStatus({ check: refused }))).not.toBeNull();
    expect(checkWarning(sampleStatus({ check: refused, state: 'downloading' }))).toBeNull();
  });

  it('beside a failed update only when newer (a Retry whose check failed)', () => {
    expect(
      checkWarning(sampleStatus({ state: 'failed', result: failedUpdate, check: refused })),
    ).not.toBeNull();
    const older = { ...refused, at: '2026-12-05T01:00:00.000Z' };
    expect(checkWarning(sampleStatus({ state: 'failed', result: failedUpdate, check: older }))).toBeNull();
  });
});
