/**
 * A leaked signing key, on the loopback mirror with the real agent: the vendor issues a new signing
 * certificate, revokes the old one with `clgw-release revoke` (the root's offline key signs the
 * list), and publishes again. Whoever holds the leaked key is refused — whether the envelope
 * carries the list or not (a replay from before the revocation) — and the new signer is accepted.
 * Every refusal leaves the slots, grubenv and the data partition as they were (the stored list and
 * the check's record apart).
 */
import { X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { serialOf } from '@clgw/core/release/revocation.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  issueSigningCert,
  runReleaseCommand,
  saveKeys,
  signDocument,
} from '../../../image/src/release/index.js';
import {
  fingerprintAll,
  makeWorld,
  type RunningAgent,
  startAgent,
  testKeys,
  type World,
} from '../../support/appliance.js';

let world: World | undefined;
let running: RunningAgent | undefined;

afterEach(async () => {
  await running?.stop();
  await world?.close();
  running = undefined;
  world = undefined;
});

beforeAll(() => {
  testKeys();
});

/** Files a refused check must not change: what the update's own record and the stored list are not. */
const CHANGED_BY_A_CHECK = new Set(['update-journal.json', 'revocations.json']);

/** Both slots, grubenv and every file on the data partition a refusal must leave alone. */
const appliance = (w: World) => fingerprintAll(w.paths, CHANGED_BY_A_CHECK);

/** Runs a technician's check on the running agent; its outcome and error as the status shows them. */
async function check(): Promise<{ outcome?: string; code?: string; message?: string }> {
  await running!.agent.request({ type: 'check' });
  await running!.agent.waitSettled(AbortSignal.timeout(60_000));
  const status = await running!.agent.status();
  expect(status.state).toBe('idle');
  return {
    outcome: status.check?.outcome,
    code: status.check?.error?.code,
    message: status.check?.error?.message,
  };
}

async function publishFiles(w: World, files: { document: Buffer; envelope: Buffer }): Promise<void> {
  await fs.writeFile(path.join(w.tree, 'compat.yaml'), files.document);
  await fs.writeFile(path.join(w.tree, 'compat.yaml.sig'), files.envelope);
}

describe('revocation: a leaked signing key', () => {
  it('refused with the list in its envelope, refused when replayed without it, the new signer accepted', async () => {
    world = await makeWorld();
    const leaked = world.keys;
    const leakedSerial = serialOf(new X509Certificate(leaked.signing.certPem));
    await world.publish('1.1.0');
    // What the holder of the leaked key can replay later: a document it signed before the revocation.
    const beforeRevocation = {
      document: await fs.readFile(path.join(world.tree, 'compat.yaml')),
      envelope: await fs.readFile(path.join(world.tree, 'compat.yaml.sig')),
    };

    // The vendor: a new signing certificate under the same intermediate into the keys directory,
    // then `clgw-release revoke` with the root's key from the offline CA directory.
    const keysDir = path.join(world.dir, 'keys');
    const caDir = path.join(world.dir, 'keys-ca');
    const renewed = { ...leaked, signing: issueSigningCert(leaked.intermediate, { bits: 2048 }) };
    await saveKeys(keysDir, renewed, { caDir });
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    const withoutRootKey = await runReleaseCommand(
      ['revoke', '--keys', keysDir, '--ca', world.dir, '--tree', world.tree, '--serial', leakedSerial],
      io,
    );
    expect(withoutRootKey).toBe(1);
    expect(out.join('\n')).toContain(`its private key ${path.join(world.dir, 'root.key')} cannot be read`);
    out.length = 0;
    const code = await runReleaseCommand(
      ['revoke', '--keys', keysDir, '--tree', world.tree, '--serial', leakedSerial.toUpperCase()],
      io,
    );
    expect(code, out.join('\n')).toBe(0);
    expect(out[0]).toBe(
      `revocation list 1 written to ${path.join(world.tree, 'revocations.json')}: 1 serial(s) revoked`,
    );
    const vendor = {
      document: await fs.readFile(path.join(world.tree, 'compat.yaml')),
      envelope: await fs.readFile(path.join(world.tree, 'compat.yaml.sig')),
    };
    const list = (JSON.parse(vendor.envelope.toString()) as { revocations: unknown }).revocations;
    expect(list).toEqual(JSON.parse(await fs.readFile(path.join(world.tree, 'revocations.json'), 'utf8')));

    // (a) The vendor's current document (list and all) re-signed with the leaked key: the appliance
    // meets the list for the first time in the very envelope it refuses.
    const envelope = JSON.parse(signDocument(vendor.document, leaked).toString()) as object;
    await publishFiles(world, {
      document: vendor.document,
      envelope: Buffer.from(JSON.stringify({ ...envelope, revocations: list })),
    });
    running = await startAgent(world);
    const untouched = await appliance(world);
    const a = await check();
    expect(a.outcome).toBe('failed');
    expect(a.code).toBe('CERT_REVOKED');
    expect(a.message).toContain(`its serial ${leakedSerial} is on revocation list 1`);
    expect(a.message).toContain('"O=clgw development, CN=clgw development release signing" (chain[0])');
    expect(await appliance(world)).toEqual(untouched);
    // Stored before it was used, exactly as signed.
    expect(JSON.parse(await fs.readFile(world.paths.revocations, 'utf8'))).toEqual(list);

    // (b) A replay from before the revocation, signed by the leaked key without any list: the
    // stored list still applies — also to an agent started afresh.
    await running.stop();
    running = await startAgent(world);
    await publishFiles(world, beforeRevocation);
    const b = await check();
    expect(b.code).toBe('CERT_REVOKED');
    expect(b.message).toContain(`its serial ${leakedSerial} is on revocation list 1`);
    expect(await appliance(world)).toEqual(untouched);

    // (c) The vendor's document, signed by the new certificate: accepted, the release offered.
    await publishFiles(world, vendor);
    const c = await check();
    expect(c).toMatchObject({ outcome: 'available' });
    expect(c.code).toBeUndefined();
    await running.deps.log.flush();
    expect(await fs.readFile(world.paths.logFile, 'utf8')).toMatch(/revocation list adopted.*"number":1/);
  });
});
