import { ClgwError } from '@clgw/core/errors.js';
import type { SlotName } from '@clgw/core/platform/paths.js';
import {
  BOOTCHOOSER_VARS,
  clearRecovery,
  defaultGrubenv,
  describeSlots,
  disableSlot,
  LAST_RESORT_TRIES,
  markBad,
  markGood,
  orderTokens,
  requestRecovery,
  selectBoot,
  selectBootFromBlock,
  switchTo,
} from '@clgw/core/slot/bootchooser.js';
import {
  GRUBENV_HEADER,
  GRUBENV_SIZE,
  grubenvEqual,
  parseGrubenv,
  serializeGrubenv,
} from '@clgw/core/slot/grubenv.js';
import { describe, expect, it } from 'vitest';
import { loadBootVectors } from './vectors.js';

const vectors = loadBootVectors();
const env = (o: Record<string, string>) => new Map(Object.entries(o));

describe('the vector table', () => {
  it('is big enough and covers every target', () => {
    expect(vectors.length).toBeGreaterThanOrEqual(25);
    for (const t of ['A', 'B', 'recovery']) expect(vectors.some((v) => v.target === t)).toBe(true);
    expect(new Set(vectors.map((v) => v.name)).size).toBe(vectors.length);
  });
});

describe('selectBoot over the vector table', () => {
  it.each(vectors.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    const input = env(v.env);
    const before = [...input];
    const decision = selectBoot(input);
    expect(decision.target).toBe(v.target);
    expect([...decision.vars]).toEqual(Object.entries(v.written));
    expect(decision.reason).not.toBe('');
    expect([...input]).toEqual(before); // pure: the input map is not touched
  });
});

describe('selectBootFromBlock over the vector table (what the boot emulator runs)', () => {
  it.each(vectors.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    const block = serializeGrubenv(env(v.env));
    const decision = selectBootFromBlock(block);
    expect(decision.target).toBe(v.target);
    const after = decision.block ?? block;
    expect(after.length).toBe(GRUBENV_SIZE);
    expect([...parseGrubenv(after)]).toEqual(Object.entries(v.written));
    if (v.target === 'recovery') expect(decision.block).toBeUndefined();
  });
});

describe('selectBootFromBlock on blocks GRUB cannot use fully', () => {
  const good = serializeGrubenv(defaultGrubenv());

  it('boots recovery when there is no grubenv or GRUB rejects it', () => {
    expect(selectBootFromBlock(undefined)).toMatchObject({ target: 'recovery', block: undefined });
    expect(selectBootFromBlock(new Uint8Array(1024)).target).toBe('recovery');
    expect(selectBootFromBlock(new Uint8Array(1024)).reason).toMatch(/not an environment block/);
  });

  it('never boots a slot whose TRY flag it cannot write', () => {
    // Torn after A_OK=1: GRUB still reads A_OK=1 and would pick A, but cannot record the try.
    const cut = GRUBENV_HEADER.length + 'ORDER=A B\nA_OK=1\nA_T'.length;
    const torn = good.slice(0, cut);
    const d = selectBootFromBlock(torn);
    expect(d).toMatchObject({ target: 'recovery', block: undefined });
    expect(d.reason).toMatch(/cannot record A_TRY=1/);
    // The same torn content read back by a fixed-size read (zeros after the tear).
    const zeroTail = good.slice();
    zeroTail.fill(0, cut);
    expect(selectBootFromBlock(zeroTail).target).toBe('recovery');
  });

  it('boots a slot from a shorter but intact block, writing in place', () => {
    const short = good.slice(0, 200);
    const d = selectBootFromBlock(short);
    expect(d.target).toBe('A');
    expect(d.block?.length).toBe(200);
    expect(new TextDecoder().decode(d.block)).toContain('A_TRY=1\n');
  });

  it('boots recovery when a missing TRY flag does not fit', () => {
    // A full block as grub-editenv could leave it (ours keep the variables in the first sector).
    const room = GRUBENV_SIZE - GRUBENV_HEADER.length - 'A_OK=1\nv=\n'.length;
    const full = new TextEncoder().encode(`${GRUBENV_HEADER}A_OK=1\nv=${'x'.repeat(room)}\n`);
    expect(full.length).toBe(GRUBENV_SIZE);
    expect(selectBootFromBlock(full).target).toBe('recovery');
  });

  it('reads only the bootchooser variables', () => {
    expect(BOOTCHOOSER_VARS).toEqual([
      'ORDER',
      'A_OK',
      'A_TRY',
      'B_OK',
      'B_TRY',
      'CLGW_RECOVERY',
      'LAST_GOOD',
      'LAST_GOOD_TRIES',
    ]);
  });
});

describe('agent-side operations', () => {
  it('switchTo puts the slot first, marks it OK and untried, and leaves the other alone', () => {
    const before = env({ ORDER: 'A B', A_OK: '1', A_TRY: '0', B_OK: '0', B_TRY: '1' });
    const after = switchTo(before, 'B');
    expect([...after]).toEqual([
      ['ORDER', 'B A'],
      ['A_OK', '1'],
      ['A_TRY', '0'],
      ['B_OK', '1'],
      ['B_TRY', '0'],
    ]);
    expect(before.get('ORDER')).toBe('A B');
    expect([...switchTo(new Map(), 'A')]).toEqual([
      ['ORDER', 'A B'],
      ['A_OK', '1'],
      ['A_TRY', '0'],
    ]);
    expect(switchTo(env({ ORDER: 'C A' }), 'A').get('ORDER')).toBe('A B');
  });

  it('markGood confirms the running slot without touching ORDER and makes it the last resort', () => {
    const after = markGood(env({ ORDER: 'B A', B_OK: '1', B_TRY: '1', LAST_GOOD_TRIES: '2' }), 'B');
    expect([...after]).toEqual([
      ['ORDER', 'B A'],
      ['B_OK', '1'],
      ['B_TRY', '0'],
      ['LAST_GOOD_TRIES', '0'],
      ['LAST_GOOD', 'B'],
    ]);
  });

  it('markBad disables the slot and puts the other first', () => {
    const after = markBad(env({ ORDER: 'B A', A_OK: '1', A_TRY: '1', B_OK: '1', B_TRY: '1' }), 'B');
    expect([...after]).toEqual([
      ['ORDER', 'A B'],
      ['A_OK', '1'],
      ['A_TRY', '1'],
      ['B_OK', '0'],
      ['B_TRY', '0'],
    ]);
  });

  it('disableSlot clears OK and reports no change when it already is 0', () => {
    const on = env({ ORDER: 'A B', A_OK: '1', B_OK: '1', B_TRY: '0' });
    const off = disableSlot(on, 'B');
    expect(off.get('B_OK')).toBe('0');
    expect(grubenvEqual(on, off)).toBe(false);
    expect(grubenvEqual(disableSlot(off, 'B'), off)).toBe(true);
    // Unset or odd values become an explicit 0.
    expect(disableSlot(new Map(), 'A').get('A_OK')).toBe('0');
    expect(disableSlot(env({ A_OK: 'yes' }), 'A').get('A_OK')).toBe('0');
  });

  it('requestRecovery / clearRecovery', () => {
    const base = defaultGrubenv();
    const asked = requestRecovery(base);
    expect(asked.get('CLGW_RECOVERY')).toBe('1');
    expect(selectBoot(asked).target).toBe('recovery');
    const cleared = clearRecovery(asked);
    expect(cleared.get('CLGW_RECOVERY')).toBe('0');
    expect(selectBoot(cleared).target).toBe('A');
    expect(grubenvEqual(clearRecovery(base), base)).toBe(true);
    expect(base.has('CLGW_RECOVERY')).toBe(false);
  });

  it('refuses a slot name other than A or B', () => {
    for (const op of [switchTo, markGood, markBad, disableSlot]) {
      let caught: unknown;
      try {
        op(new Map(), 'a' as SlotName);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ClgwError);
      expect((caught as ClgwError).code).toBe('SLOT_UNKNOWN');
      expect((caught as ClgwError).message).toContain('"a"');
      expect(() => op(new Map(), 'C' as SlotName)).toThrow(/unknown slot "C"/);
    }
  });
});

describe('defaultGrubenv', () => {
  it('is the factory state: A good, B empty, and boots A', () => {
    expect([...defaultGrubenv()]).toEqual([
      ['ORDER', 'A B'],
      ['A_OK', '1'],
      ['A_TRY', '0'],
      ['B_OK', '0'],
      ['B_TRY', '0'],
      ['LAST_GOOD', 'A'],
      ['LAST_GOOD_TRIES', '0'],
    ]);
    expect(selectBoot(defaultGrubenv()).target).toBe('A');
    expect(parseGrubenv(serializeGrubenv(defaultGrubenv()))).toEqual(defaultGrubenv());
  });
});

describe('describeSlots', () => {
  it('interprets the variables with the same rules as selectBoot', () => {
    expect(describeSlots(defaultGrubenv())).toEqual({
      order: ['A', 'B'],
      A: { ok: true, try: false, bootable: true },
      B: { ok: false, try: false, bootable: false },
      recovery: false,
      lastGood: 'A',
      next: 'A',
    });
    expect(
      describeSlots(
        env({ ORDER: 'B\tA C', A_OK: '1', A_TRY: '', B_OK: '1', B_TRY: '1', CLGW_RECOVERY: '1' }),
      ),
    ).toEqual({
      order: ['B', 'A', 'C'],
      A: { ok: true, try: true, bootable: false },
      B: { ok: true, try: true, bootable: false },
      recovery: true,
      lastGood: undefined,
      next: 'recovery',
    });
    expect(orderTokens(new Map())).toEqual(['A', 'B']);
  });
});

describe('a whole update cycle, boot by boot', () => {
  /** One power-on: GRUB decides and writes back; returns the booted target. */
  function boot(state: { vars: Map<string, string> }): string {
    const d = selectBoot(state.vars);
    state.vars = d.vars;
    return d.target;
  }

  it('update to B, B fails to come up, automatic rollback to A; then a good update', () => {
    const state = { vars: defaultGrubenv() };
    expect(boot(state)).toBe('A');
    state.vars = markGood(state.vars, 'A'); // agent: A healthy

    state.vars = disableSlot(state.vars, 'B'); // before writing B
    state.vars = switchTo(state.vars, 'B'); // after writing and verifying B: critical phase
    expect(boot(state)).toBe('B'); // B panics before the agent marks it good…
    expect(boot(state)).toBe('A'); // …so the next boot rolls back to A
    expect(describeSlots(state.vars).B).toEqual({ ok: true, try: true, bootable: false });
    state.vars = markBad(state.vars, 'B'); // agent on A: record the failed update
    state.vars = markGood(state.vars, 'A');
    expect(boot(state)).toBe('A');
    state.vars = markGood(state.vars, 'A');

    state.vars = disableSlot(state.vars, 'B');
    state.vars = switchTo(state.vars, 'B');
    expect(boot(state)).toBe('B');
    state.vars = markGood(state.vars, 'B'); // healthy this time
    expect(boot(state)).toBe('B');
    state.vars = markGood(state.vars, 'B');
    expect([...state.vars]).toEqual([
      ['ORDER', 'B A'],
      ['A_OK', '1'],
      ['A_TRY', '0'],
      ['B_OK', '1'],
      ['B_TRY', '0'],
      ['LAST_GOOD', 'B'],
      ['LAST_GOOD_TRIES', '0'],
    ]);
  });

  it('a slot that keeps failing gets the last resort three times, then recovery — no boot loop', () => {
    const state = { vars: defaultGrubenv() };
    expect(boot(state)).toBe('A'); // A never confirmed
    for (let i = 0; i < LAST_RESORT_TRIES; i++) expect(boot(state)).toBe('A');
    expect(boot(state)).toBe('recovery');
    expect(boot(state)).toBe('recovery');
  });

  it('a power cut before each confirmation costs a last-resort try; a confirmation restores them all', () => {
    const state = { vars: defaultGrubenv() };
    expect(boot(state)).toBe('A');
    state.vars = markGood(state.vars, 'A');
    for (let round = 0; round < 5; round++) {
      expect(boot(state)).toBe('A'); // the power goes off before the agent confirms A…
      expect(boot(state)).toBe('A'); // …the last resort boots it again, and this time it confirms
      state.vars = markGood(state.vars, 'A');
    }
    expect(state.vars.get('LAST_GOOD_TRIES')).toBe('0');
  });

  it('after a cut in the rollback boot, the last good slot boots, not the unconfirmed new one', () => {
    const state = { vars: defaultGrubenv() };
    expect(boot(state)).toBe('A');
    state.vars = markGood(state.vars, 'A');
    state.vars = switchTo(disableSlot(state.vars, 'B'), 'B');
    expect(boot(state)).toBe('B'); // cut before B is confirmed
    expect(boot(state)).toBe('A'); // fallback; cut before A is confirmed again
    expect(boot(state)).toBe('A'); // last resort: A, although B is first in ORDER
    expect(state.vars.get('ORDER')).toBe('B A');
  });

  it('markBad of the last good slot withdraws it as the last resort', () => {
    const vars = markBad(markGood(defaultGrubenv(), 'A'), 'A');
    expect(vars.get('LAST_GOOD')).toBe('');
    expect(selectBoot(new Map([...vars, ['A_OK', '1'], ['A_TRY', '1']])).target).toBe('recovery');
  });
});
