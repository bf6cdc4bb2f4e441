import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** One row of test/fixtures/bootchooser-vectors.json. */
export interface BootVector {
  name: string;
  env: Record<string, string>;
  target: 'A' | 'B' | 'recovery';
  written: Record<string, string>;
}

export const VECTORS_FILE = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../fixtures/bootchooser-vectors.json',
);

function isStringRecord(v: unknown): v is Record<string, string> {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === 'string')
  );
}

/** Loads the vector table, refusing a malformed row so a typo cannot silently drop a case. */
export function loadBootVectors(): BootVector[] {
  const doc = JSON.parse(readFileSync(VECTORS_FILE, 'utf8')) as { vectors?: unknown };
  if (!Array.isArray(doc.vectors)) throw new Error(`${VECTORS_FILE}: no "vectors" array`);
  return doc.vectors.map((raw: unknown, i: number) => {
    const v = raw as Partial<BootVector>;
    const ok =
      typeof v.name === 'string' &&
      isStringRecord(v.env) &&
      isStringRecord(v.written) &&
      (v.target === 'A' || v.target === 'B' || v.target === 'recovery') &&
      Object.keys(v).length === 4;
    if (!ok) throw new Error(`${VECTORS_FILE}: vector ${i} is malformed: ${JSON.stringify(raw)}`);
    return v as BootVector;
  });
}
