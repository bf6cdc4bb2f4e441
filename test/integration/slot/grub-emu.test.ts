/**
 * The real GRUB runs image/grub/slot-select.cfg (and grub.cfg) over the bootchooser vector table
 * and over torn/odd blocks, in grub-emu. Both the target and the grubenv GRUB leaves behind must
 * match the table, and — byte for byte — what the TypeScript emulator (selectBootFromBlock)
 * predicts. This is what makes "the simulator boots like the appliance" a checked fact.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFile } from '@clgw/core/platform/exec.js';
import {
  defaultGrubenv,
  requestRecovery,
  selectBootFromBlock,
  switchTo,
} from '@clgw/core/slot/bootchooser.js';
import { GRUBENV_HEADER, GRUBENV_SIZE, parseGrubenv, serializeGrubenv } from '@clgw/core/slot/grubenv.js';
import { afterAll, describe, expect, it } from 'vitest';
import { recordSkip } from '../../support/skip.js';
import { type BootVector, loadBootVectors } from '../../unit/slot/vectors.js';
import { grubEmuUnavailable, makeExt2Image, readExt2Files, resultField, runGrubEmu } from './grub-emu.js';

const GRUB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../image/grub');
const SLOT_SELECT = path.join(GRUB_DIR, 'slot-select.cfg');

const work = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-grub-emu-'));
const unavailable = await grubEmuUnavailable(work);
if (unavailable) {
  recordSkip('test/integration/slot/grub-emu.test.ts', unavailable);
  await fs.rm(work, { recursive: true, force: true });
}

afterAll(async () => {
  await fs.rm(work, { recursive: true, force: true });
});

const enc = new TextEncoder();
const vectors = loadBootVectors();

/** A grubenv GRUB may meet after a power cut or a careless edit, beyond the table's well-formed ones. */
interface OddCase {
  name: string;
  /** Undefined: the file does not exist. */
  block: Uint8Array | undefined;
  /** What GRUB must do (also checked against the emulator). */
  target: 'A' | 'B' | 'recovery';
}

function raw(text: string, size = GRUBENV_SIZE): Uint8Array {
  const b = new Uint8Array(size).fill(0x23);
  b.set(enc.encode(GRUBENV_HEADER + text).subarray(0, size));
  return b;
}

const good = serializeGrubenv(defaultGrubenv());
const cutMidLine = GRUBENV_HEADER.length + 'ORDER=A B\nA_OK=1\nA_T'.length;
const oddCases: OddCase[] = [
  { name: 'no grubenv file', block: undefined, target: 'recovery' },
  { name: 'all zero bytes', block: new Uint8Array(GRUBENV_SIZE), target: 'recovery' },
  { name: 'file truncated in the middle of A_TRY', block: good.slice(0, cutMidLine), target: 'recovery' },
  {
    name: 'zero-filled from the middle of A_TRY on',
    block: (() => {
      const b = good.slice();
      b.fill(0, cutMidLine);
      return b;
    })(),
    target: 'recovery',
  },
  { name: 'file truncated inside the padding (shorter block)', block: good.slice(0, 120), target: 'A' },
  {
    name: 'garbage after the padding began',
    block: (() => {
      const b = good.slice();
      for (let i = 700; i < GRUBENV_SIZE; i++) b[i] = 0x41 + (i % 26);
      return b;
    })(),
    target: 'recovery',
  },
  {
    name: 'no room left for a missing A_TRY',
    block: raw(`A_OK=1\nv=${'x'.repeat(GRUBENV_SIZE)}\n`),
    target: 'recovery',
  },
  {
    name: 'duplicate A_TRY: GRUB reads the last, writes the first',
    block: raw('A_OK=1\nA_TRY=1\nA_TRY=0\n'),
    target: 'A',
  },
  { name: 'an escape no writer produces (A_OK=\\1)', block: raw('A_OK=\\1\nA_TRY=0\n'), target: 'A' },
  {
    name: 'CRLF line ends make every value end in CR',
    block: raw('ORDER=A B\r\nA_OK=1\r\nA_TRY=0\r\n'),
    target: 'recovery',
  },
  {
    name: 'a line without "=" swallows the next name',
    block: raw('junk\nA_OK=1\nA_TRY=0\n'),
    target: 'recovery',
  },
  {
    name: 'hostile variables are not loaded (whitelist)',
    block: raw('root=hd9\nprefix=(hd9)/evil\nclgw_target=B\nA_OK=1\nA_TRY=0\n'),
    target: 'A',
  },
  { name: 'a 2048-byte block', block: raw('B_OK=1\nB_TRY=0\n', 2048), target: 'B' },
];

interface Outcome {
  target: string | undefined;
  output: string;
  after: Uint8Array | undefined;
}

/** Runs every case in its own grub-emu process against one disk image; returns per-case outcomes. */
async function runAll(): Promise<{ vectors: Outcome[]; odd: Outcome[]; editenv: Outcome }> {
  const files = new Map<string, Uint8Array>();
  vectors.forEach((v, i) => {
    files.set(`v/${i}.env`, serializeGrubenv(new Map(Object.entries(v.env))));
  });
  oddCases.forEach((c, i) => {
    if (c.block) files.set(`odd/${i}.env`, c.block);
  });
  // A block made by GRUB's own tool (with Debian's comment line), B_TRY absent.
  const editenv = path.join(work, 'editenv.env');
  await execFile('grub-editenv', [editenv, 'create']);
  await execFile('grub-editenv', [editenv, 'set', 'ORDER=B A', 'A_OK=1', 'A_TRY=0', 'B_OK=1']);
  files.set('editenv.env', new Uint8Array(await fs.readFile(editenv)));

  const image = path.join(work, 'disk.img');
  await makeExt2Image(image, path.join(work, 'staging'), files);
  const emuDir = path.join(work, 'emu');
  const run = async (envPath: string): Promise<{ target: string | undefined; output: string }> => {
    const script = [
      `set clgw_grubenv=${envPath}`,
      `source "(host)${SLOT_SELECT}"`,
      'echo',
      'echo "CLGW-RESULT target=[$clgw_target]"',
      'echo "CLGW-RESULT root=[$root]"',
      'echo "CLGW-RESULT reason=[$clgw_reason]"',
      'halt',
      '',
    ].join('\n');
    const output = await runGrubEmu(emuDir, script, image);
    return { target: resultField(output, 'CLGW-RESULT', 'target'), output };
  };

  const vOut = [];
  for (const [i] of vectors.entries()) vOut.push(await run(`(hd0)/v/${i}.env`));
  const oOut = [];
  for (const [i, c] of oddCases.entries())
    oOut.push(await run(c.block ? `(hd0)/odd/${i}.env` : '(hd0)/odd/missing.env'));
  const eOut = await run('(hd0)/editenv.env');

  const names = [...files.keys()];
  const after = await readExt2Files(image, path.join(work, 'out'), names);
  return {
    vectors: vOut.map((o, i) => ({ ...o, after: after.get(`v/${i}.env`) })),
    odd: oOut.map((o, i) => ({ ...o, after: after.get(`odd/${i}.env`) })),
    editenv: { ...eOut, after: after.get('editenv.env') },
  };
}

describe.skipIf(unavailable !== undefined)('real GRUB (grub-emu) runs slot-select.cfg', async () => {
  const results = unavailable === undefined ? await runAll() : undefined;

  describe('over the vector table', () => {
    it.each(vectors.map((v, i) => [v.name, v, i] as const))('%s', (_name, v: BootVector, i: number) => {
      const r = results!.vectors[i]!;
      expect(r.target, r.output).toBe(v.target);
      expect([...parseGrubenv(r.after!)], r.output).toEqual(Object.entries(v.written));
      // The TypeScript emulator predicts GRUB's write byte for byte.
      const before = serializeGrubenv(new Map(Object.entries(v.env)));
      const predicted = selectBootFromBlock(before);
      expect(predicted.target).toBe(v.target);
      expect(r.after).toEqual(predicted.block ?? before);
    });
  });

  describe('over torn and odd blocks, agreeing with selectBootFromBlock', () => {
    it.each(oddCases.map((c, i) => [c.name, c, i] as const))('%s', (_name, c: OddCase, i: number) => {
      const r = results!.odd[i]!;
      expect(r.target, r.output).toBe(c.target);
      const predicted = selectBootFromBlock(c.block);
      expect(predicted.target, predicted.reason).toBe(c.target);
      if (c.block) expect(r.after).toEqual(predicted.block ?? c.block);
      expect(resultField(r.output, 'CLGW-RESULT', 'root'), 'root must not come from grubenv').toBe('host');
    });

    it('a block written by grub-editenv (comment line, B_TRY absent)', () => {
      const r = results!.editenv;
      expect(r.target, r.output).toBe('B');
      expect([...parseGrubenv(r.after!)]).toEqual([
        ['ORDER', 'B A'],
        ['A_OK', '1'],
        ['A_TRY', '0'],
        ['B_OK', '1'],
        ['B_TRY', '1'],
      ]);
    });
  });
});

describe.skipIf(unavailable !== undefined)('real GRUB (grub-emu) runs grub.cfg', async () => {
  // The ESP as grub.cfg expects it: grub.cfg, slot-select.cfg and grubenv in $prefix.
  const scenarios = [
    { name: 'factory state boots slot A', env: defaultGrubenv(), target: 'A' },
    { name: 'after switching to B', env: switchTo(defaultGrubenv(), 'B'), target: 'B' },
    { name: 'recovery requested', env: requestRecovery(defaultGrubenv()), target: 'recovery' },
  ];
  const outcomes: { output: string; after: Uint8Array | undefined }[] = [];
  if (unavailable === undefined) {
    const files = new Map<string, Uint8Array | string>();
    const cfg = await fs.readFile(path.join(GRUB_DIR, 'grub.cfg'), 'utf8');
    const select = await fs.readFile(SLOT_SELECT, 'utf8');
    scenarios.forEach((s, i) => {
      files.set(`esp${i}/grub.cfg`, cfg);
      files.set(`esp${i}/slot-select.cfg`, select);
      files.set(`esp${i}/grubenv`, serializeGrubenv(s.env));
    });
    const image = path.join(work, 'esp.img');
    await makeExt2Image(image, path.join(work, 'esp-staging'), files);
    for (const [i] of scenarios.entries()) {
      // `source`, not `configfile`: the entries are defined but the menu never opens, so the
      // script can report what grub.cfg decided and stop.
      const script = [
        `set prefix=(hd0)/esp${i}`,
        'set root=hd0',
        'source "$prefix/grub.cfg"',
        'echo',
        'echo "CLGW-RESULT target=[$clgw_target]"',
        'echo "CLGW-RESULT default=[$default]"',
        'echo "CLGW-RESULT fallback=[$fallback]"',
        'halt',
        '',
      ].join('\n');
      outcomes.push({
        output: await runGrubEmu(path.join(work, 'emu-cfg'), script, image),
        after: undefined,
      });
    }
    const after = await readExt2Files(
      image,
      path.join(work, 'esp-out'),
      scenarios.map((_, i) => `esp${i}/grubenv`),
    );
    scenarios.forEach((_, i) => {
      outcomes[i]!.after = after.get(`esp${i}/grubenv`);
    });
  }

  it.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s', (_name, s, i: number) => {
    const { output, after } = outcomes[i]!;
    expect(resultField(output, 'CLGW-RESULT', 'target'), output).toBe(s.target);
    expect(resultField(output, 'CLGW-RESULT', 'default'), output).toBe(`clgw-${s.target}`);
    expect(resultField(output, 'CLGW-RESULT', 'fallback'), output).toBe('clgw-recovery');
    expect(output).toContain(`clgw: booting ${s.target}:`);
    const predicted = selectBootFromBlock(serializeGrubenv(s.env));
    expect(after).toEqual(predicted.block ?? serializeGrubenv(s.env));
  });
});
