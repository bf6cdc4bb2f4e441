/**
 * The boot selection rules — the one definition that `image/grub/slot-select.cfg` (the real
 * bootloader) and the simulator's boot emulator both implement; `test/fixtures/
 * bootchooser-vectors.json` checks both against the same table.
 *
 * Variables in grubenv (RAUC-style):
 * - `ORDER`: slots to try, first to last (default "A B"). GRUB splits it at spaces, tabs, CRs and
 *   newlines; names other than A and B are skipped.
 * - `A_OK`, `B_OK`: the slot holds a complete system that may be booted — only the exact string
 *   "1" counts (absent, "", "2", "yes" → not bootable).
 * - `A_TRY`, `B_TRY`: the slot has been booted and not yet confirmed healthy — only the exact
 *   string "0" (or the variable being absent) means "not tried"; any other value counts as tried,
 *   so a garbled flag can never make a slot boot again.
 * - `CLGW_RECOVERY`: "1" = boot the recovery system (the agent asked, e.g. factory reset).
 * - `LAST_GOOD`: the slot the agent last confirmed healthy (A or B; anything else = none), and
 *   `LAST_GOOD_TRIES`: how many times it has been booted as the last resort since ("0" or absent,
 *   then "1", "2", "3"). When no slot is good and untried — typically the power went off between
 *   GRUB marking the running slot tried and the agent confirming it again — GRUB boots LAST_GOOD
 *   once more instead of the recovery system, at most {@link LAST_RESORT_TRIES} times in a row;
 *   the next confirmation resets the count. Without this, a power cut in the seconds after
 *   every boot would end in a factory reset, erasing the customer's data.
 *
 * GRUB compares with `[ "$X" = "1" ]` (string equality), which these rules match exactly.
 *
 * Pure: no `node:*` imports.
 */
import { ClgwError } from '../errors.js';
import type { SlotName } from '../platform/paths.js';
import { grubReadEnv, grubSetEnv } from './grubenv.js';

export type BootTarget = SlotName | 'recovery';

/** What the bootloader decides for one boot. */
export interface BootDecision {
  target: BootTarget;
  /** The variables as GRUB leaves them (it writes `<slot>_TRY=1` with `save_env` before booting). */
  vars: Map<string, string>;
  /** One line for logs and the boot menu. */
  reason: string;
  /** The variable GRUB records with `save_env` before booting the slot (undefined: recovery). */
  saves?: string;
}

/** The variables the bootchooser reads — and the only ones `slot-select.cfg` loads (`load_env` whitelist). */
export const BOOTCHOOSER_VARS = [
  'ORDER',
  'A_OK',
  'A_TRY',
  'B_OK',
  'B_TRY',
  'CLGW_RECOVERY',
  'LAST_GOOD',
  'LAST_GOOD_TRIES',
] as const;

/** How many boots in a row the last good slot gets as the last resort before recovery. */
export const LAST_RESORT_TRIES = 3;
/** LAST_GOOD_TRIES → its next value; a value not listed means the tries are used up. */
const NEXT_TRY: Readonly<Record<string, string>> = { '0': '1', '1': '2', '2': '3' };

const SLOTS: readonly SlotName[] = ['A', 'B'];
const DEFAULT_ORDER = 'A B';

function other(slot: SlotName): SlotName {
  return slot === 'A' ? 'B' : 'A';
}

function checkSlot(slot: string): SlotName {
  if (slot !== 'A' && slot !== 'B') {
    throw new ClgwError('SLOT_UNKNOWN', `unknown slot ${JSON.stringify(slot)} (expected A or B)`, {
      details: { slot },
    });
  }
  return slot;
}

/** ORDER as GRUB's `for SLOT in $ORDER` sees it: split at GRUB's whitespace (space, tab, CR, LF). */
export function orderTokens(vars: ReadonlyMap<string, string>): string[] {
  return (vars.get('ORDER') ?? DEFAULT_ORDER).split(/[ \t\r\n]+/).filter((t) => t !== '');
}

function isOk(vars: ReadonlyMap<string, string>, slot: SlotName): boolean {
  return vars.get(`${slot}_OK`) === '1';
}

function isUntried(vars: ReadonlyMap<string, string>, slot: SlotName): boolean {
  return (vars.get(`${slot}_TRY`) ?? '0') === '0';
}

function showVar(vars: ReadonlyMap<string, string>, name: string): string {
  const v = vars.get(name);
  return v === undefined ? `${name} unset` : `${name}=${JSON.stringify(v)}`;
}

/**
 * Decides what GRUB boots. `CLGW_RECOVERY=1` → recovery, variables unchanged. Otherwise ORDER is
 * walked: the first slot with OK "1" and TRY "0" (or unset) is booted and its TRY set to "1" — the
 * running system sets it back to "0" once healthy, so a new release that never gets there is
 * skipped next time (automatic rollback). A slot met on the way that is LAST_GOOD, OK "1" and
 * tried is booted again while LAST_GOOD_TRIES is "0" (or unset), "1" or "2", counting up: it was
 * confirmed before, only its boot was cut short. No slot at all → the last resort: LAST_GOOD on the
 * same terms. Otherwise recovery, variables unchanged.
 *
 * GRUB additionally falls back to recovery when it cannot write the TRY flag (see
 * {@link selectBootFromBlock}); a boot emulator that writes `vars` back must do the same when its
 * write fails, so no slot is ever booted without the attempt being recorded.
 */
export function selectBoot(vars: ReadonlyMap<string, string>): BootDecision {
  const out = new Map(vars);
  if (vars.get('CLGW_RECOVERY') === '1') {
    return { target: 'recovery', vars: out, reason: 'recovery requested (CLGW_RECOVERY=1)' };
  }
  const last = vars.get('LAST_GOOD');
  const next = NEXT_TRY[vars.get('LAST_GOOD_TRIES') ?? '0'];
  /** LAST_GOOD booted once more, LAST_GOOD_TRIES counted up (`next` is defined where called). */
  const lastGoodAgain = (slot: SlotName, why: string): BootDecision => {
    out.set('LAST_GOOD_TRIES', next!);
    return {
      target: slot,
      vars: out,
      reason: `${why} (LAST_GOOD_TRIES set to ${next} of ${LAST_RESORT_TRIES})`,
      saves: 'LAST_GOOD_TRIES',
    };
  };
  for (const token of orderTokens(vars)) {
    if (token !== 'A' && token !== 'B') continue;
    if (isOk(vars, token) && isUntried(vars, token)) {
      out.set(`${token}_TRY`, '1');
      return {
        target: token,
        vars: out,
        reason: `trying slot ${token} (${token}_OK=1, ${token}_TRY set to 1)`,
        saves: `${token}_TRY`,
      };
    }
    // The slot last confirmed, tried and not confirmed again: its boot was cut short (a power
    // cut in the seconds before the agent confirms it at every start), which says nothing against
    // it. It boots again, counted, before an older slot later in ORDER — else a power flicker at
    // boot would put the appliance back on its previous release.
    if (token === last && isOk(vars, token) && next !== undefined)
      return lastGoodAgain(
        token,
        `slot ${token} was confirmed before and its last boot was cut short; booting it again`,
      );
  }
  if ((last === 'A' || last === 'B') && isOk(vars, last) && next !== undefined)
    return lastGoodAgain(last, `no untried slot; booting the last good slot ${last} again`);
  const order = vars.has('ORDER') ? `ORDER=${JSON.stringify(vars.get('ORDER'))}` : 'ORDER unset ("A B")';
  const state = SLOTS.map((s) => `${showVar(vars, `${s}_OK`)} ${showVar(vars, `${s}_TRY`)}`).join(', ');
  const lastGood = `${showVar(vars, 'LAST_GOOD')} ${showVar(vars, 'LAST_GOOD_TRIES')}`;
  return {
    target: 'recovery',
    vars: out,
    reason: `no bootable slot in ${order} (${state}; ${lastGood})`,
  };
}

/** What GRUB does with the grubenv file's bytes, for the simulator's boot emulator. */
export interface BlockBootDecision {
  target: BootTarget;
  /** The file's new content, or undefined when GRUB leaves the file as it was. */
  block: Uint8Array | undefined;
  reason: string;
}

/**
 * The whole of `slot-select.cfg` applied to the grubenv file's bytes (undefined = no file):
 * GRUB's lenient `load_env` of {@link BOOTCHOOSER_VARS} (a block GRUB rejects yields only the
 * defaults; a torn one yields the lines before the tear), {@link selectBoot}, then GRUB's in-place
 * `save_env` of the chosen slot's TRY flag. When that write is impossible (no file, broken block,
 * no room) the result is recovery: never boot a slot whose attempt was not recorded.
 */
export function selectBootFromBlock(block: Uint8Array | undefined): BlockBootDecision {
  const vars = block === undefined ? undefined : grubReadEnv(block, BOOTCHOOSER_VARS);
  const decision = selectBoot(vars ?? new Map());
  const unreadable = vars === undefined ? ' (grubenv missing or not an environment block)' : '';
  if (decision.target === 'recovery') {
    return { target: 'recovery', block: undefined, reason: decision.reason + unreadable };
  }
  const flag = decision.saves!;
  const value = decision.vars.get(flag)!;
  const written = block === undefined ? undefined : grubSetEnv(block, flag, value);
  if (written === undefined) {
    return {
      target: 'recovery',
      block: undefined,
      reason: `cannot record ${flag}=${value} in grubenv (broken block or no room), not booting slot ${decision.target}`,
    };
  }
  return { target: decision.target, block: written, reason: decision.reason };
}

/**
 * Makes `slot` the next one booted: first in ORDER (normalized to "<slot> <other>"), `_OK=1`,
 * `_TRY=0`. The other slot's flags stay, so it remains the fallback if it is good.
 */
export function switchTo(vars: ReadonlyMap<string, string>, slot: SlotName): Map<string, string> {
  const s = checkSlot(slot);
  const out = new Map(vars);
  out.set('ORDER', `${s} ${other(s)}`);
  out.set(`${s}_OK`, '1');
  out.set(`${s}_TRY`, '0');
  return out;
}

/**
 * Confirms the running slot is healthy: `_OK=1`, `_TRY=0` (ORDER untouched), and makes it the
 * last resort with a fresh count (`LAST_GOOD=<slot>`, `LAST_GOOD_TRIES=0`). Compare with
 * `grubenvEqual` to skip the write when the slot already was confirmed.
 */
export function markGood(vars: ReadonlyMap<string, string>, slot: SlotName): Map<string, string> {
  const s = checkSlot(slot);
  const out = new Map(vars);
  out.set(`${s}_OK`, '1');
  out.set(`${s}_TRY`, '0');
  out.set('LAST_GOOD', s);
  out.set('LAST_GOOD_TRIES', '0');
  return out;
}

/**
 * Rejects a slot: `_OK=0`, `_TRY=0`, and the other slot first in ORDER; if it was the last good
 * slot it is that no longer (`LAST_GOOD` emptied — GRUB cannot delete a variable).
 */
export function markBad(vars: ReadonlyMap<string, string>, slot: SlotName): Map<string, string> {
  const s = checkSlot(slot);
  const out = new Map(vars);
  out.set('ORDER', `${other(s)} ${s}`);
  out.set(`${s}_OK`, '0');
  out.set(`${s}_TRY`, '0');
  if (out.get('LAST_GOOD') === s) out.set('LAST_GOOD', '');
  return out;
}

/**
 * Makes a slot unbootable (`_OK=0`) before it is overwritten, so a half-written slot is never
 * booted. When `_OK` is already exactly "0" the content is returned unchanged (compare with
 * `grubenvEqual` to skip the write); an unset or odd value is replaced by an explicit "0".
 */
export function disableSlot(vars: ReadonlyMap<string, string>, slot: SlotName): Map<string, string> {
  const s = checkSlot(slot);
  const out = new Map(vars);
  if (out.get(`${s}_OK`) !== '0') out.set(`${s}_OK`, '0');
  return out;
}

/** Asks GRUB to boot the recovery system next (`CLGW_RECOVERY=1`), e.g. for a factory reset. */
export function requestRecovery(vars: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map(vars);
  out.set('CLGW_RECOVERY', '1');
  return out;
}

/** Withdraws a recovery request (`CLGW_RECOVERY=0`); unchanged when the variable is not set. */
export function clearRecovery(vars: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map(vars);
  if (out.has('CLGW_RECOVERY') && out.get('CLGW_RECOVERY') !== '0') out.set('CLGW_RECOVERY', '0');
  return out;
}

export interface SlotFlags {
  /** `_OK` is "1". */
  ok: boolean;
  /** `_TRY` is set and not "0": booted and not (yet) confirmed healthy. */
  try: boolean;
  /** GRUB would consider this slot (ok and not tried). */
  bootable: boolean;
}

export interface SlotsDescription {
  /** ORDER as GRUB splits it (unknown names included, as they are stored). */
  order: string[];
  A: SlotFlags;
  B: SlotFlags;
  /** `CLGW_RECOVERY` is "1". */
  recovery: boolean;
  /** The slot last confirmed healthy, the last resort when no slot is untried. */
  lastGood: SlotName | undefined;
  /** What GRUB would boot next with these variables. */
  next: BootTarget;
}

/** The boot variables in the terms status displays use, interpreted by the same rules as GRUB. */
export function describeSlots(vars: ReadonlyMap<string, string>): SlotsDescription {
  const flags = (s: SlotName): SlotFlags => ({
    ok: isOk(vars, s),
    try: !isUntried(vars, s),
    bootable: isOk(vars, s) && isUntried(vars, s),
  });
  return {
    order: orderTokens(vars),
    A: flags('A'),
    B: flags('B'),
    recovery: vars.get('CLGW_RECOVERY') === '1',
    lastGood:
      vars.get('LAST_GOOD') === 'A' || vars.get('LAST_GOOD') === 'B'
        ? (vars.get('LAST_GOOD') as SlotName)
        : undefined,
    next: selectBoot(vars).target,
  };
}

/** The grubenv of a factory-fresh appliance: slot A installed, good and the last resort; B empty. */
export function defaultGrubenv(): Map<string, string> {
  return new Map([
    ['ORDER', DEFAULT_ORDER],
    ['A_OK', '1'],
    ['A_TRY', '0'],
    ['B_OK', '0'],
    ['B_TRY', '0'],
    ['LAST_GOOD', 'A'],
    ['LAST_GOOD_TRIES', '0'],
  ]);
}
