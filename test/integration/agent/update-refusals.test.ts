/**
 * Every way an update can be refused or fail before the switch: each ends in a clear error code
 * and leaves the active slot and the boot environment byte-for-byte unchanged. A refusal at the
 * check (the document, the server) is a failed check, a warning; a failure once the download has
 * begun is a failed update.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateDevKeys, signDocument } from '../../../image/src/release/index.js';
import {
  fingerprint,
  makeWorld,
  type RunningAgent,
  startAgent,
  testKeys,
  until,
  type World,
} from '../../support/appliance.js';
import { startDnsServer } from '../../support/dns-server.js';

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

/**
 * Runs one update that is refused, and returns the error it ended with: at the `check` (nothing
 * downloaded: a warning — back to idle, the check's error recorded, no update result) or at the
 * `update` (the failed state). The appliance stays byte-identical on slot A, and the persisted
 * journal says the same as the live agent (a settled state is persisted on entry).
 */
async function refused(
  w: World,
  expectedCode: string,
  stage: 'check' | 'update',
): Promise<{ code: string; message: string }> {
  running = await startAgent(w);
  const before = await fingerprint(w.paths);
  await running.agent.request({ type: 'update' });
  const state = await running.agent.waitSettled(AbortSignal.timeout(60_000));
  const status = await running.agent.status();
  const error = stage === 'check' ? status.check?.error : status.error;
  expect(state, JSON.stringify(error)).toBe(stage === 'check' ? 'idle' : 'failed');
  expect(error?.code).toBe(expectedCode);
  if (stage === 'check') {
    expect(status.check?.outcome).toBe('failed');
    expect(status.error).toBeNull();
    expect(status.result).toBeNull();
  }
  expect(await fingerprint(w.paths)).toEqual(before);
  expect(status.bootedSlot).toBe('A');
  const journal = await until(
    async () => {
      const j = JSON.parse(await fs.readFile(w.paths.journal, 'utf8'));
      return j.state === state && (stage === 'update' || j.check?.outcome === 'failed') ? j : undefined;
    },
    `the ${stage === 'check' ? 'failed check' : 'failed state'} to be persisted`,
    10_000,
  );
  expect((stage === 'check' ? journal.check.error : journal.error).code).toBe(expectedCode);
  return error!;
}

const checkFails = (w: World, code: string) => refused(w, code, 'check');
const updateFails = (w: World, code: string) => refused(w, code, 'update');

async function resign(w: World, text: string, keys = w.keys): Promise<void> {
  await fs.writeFile(path.join(w.tree, 'compat.yaml'), text);
  await fs.writeFile(path.join(w.tree, 'compat.yaml.sig'), signDocument(Buffer.from(text), keys));
}

describe('signature and trust', () => {
  it('unsigned compat.yaml → SIGNATURE_MISSING', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    await fs.rm(path.join(world.tree, 'compat.yaml.sig'));
    await checkFails(world, 'SIGNATURE_MISSING');
  });

  it('tampered compat.yaml → SIGNATURE_INVALID', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const file = path.join(world.tree, 'compat.yaml');
    await fs.writeFile(
      file,
      (await fs.readFile(file, 'utf8')).replace('minSourceVersion: 1.0.0', 'minSourceVersion: 0.1.0'),
    );
    await checkFails(world, 'SIGNATURE_INVALID');
  });

  it('signature by an unknown key → CHAIN_INVALID', async () => {
    world = await makeWorld();
    await world.publish('1.1.0', { keys: generateDevKeys({ bits: 2048 }) });
    const e = await checkFails(world, 'CHAIN_INVALID');
    expect(e.message).toMatch(/CN=/);
  });

  it('an intermediate not issued by the pinned root, even with a look-alike root embedded → CHAIN_INVALID', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const rogue = generateDevKeys({ bits: 2048 }); // same subject names as the real keys
    const text = await fs.readFile(path.join(world.tree, 'compat.yaml'));
    await fs.writeFile(
      path.join(world.tree, 'compat.yaml.sig'),
      signDocument(text, rogue, { chain: [rogue.root.certPem] }),
    );
    await checkFails(world, 'CHAIN_INVALID');
  });
});

describe('version rules', () => {
  it('expired compat.yaml → RELEASE_EXPIRED', async () => {
    world = await makeWorld();
    await world.publish('1.1.0', { now: Date.now() - 3 * 86_400_000, expiresInDays: 1 });
    await checkFails(world, 'RELEASE_EXPIRED');
  });

  it('compat.yaml published a day ahead of the clock → RELEASE_NOT_YET_VALID naming both times', async () => {
    world = await makeWorld();
    const published = Date.now() + 86_400_000;
    await world.publish('1.1.0', { now: published });
    const e = await checkFails(world, 'RELEASE_NOT_YET_VALID');
    expect(e.message).toContain(`published at ${new Date(published).toISOString().slice(0, 19)}Z`);
    const now = /it is now (\S+) by this appliance's clock/.exec(e.message)?.[1];
    expect(Math.abs(Date.parse(now ?? '') - Date.now()), e.message).toBeLessThan(120_000);
  });

  it('downgrade below the highest version ever installed → DOWNGRADE_REFUSED', async () => {
    world = await makeWorld();
    await writeJsonAtomic(world.paths.history, { highestVersion: '1.5.0', rejected: [] });
    await world.publish('1.1.0');
    const e = await checkFails(world, 'DOWNGRADE_REFUSED');
    expect(e.message).toContain('1.5.0');
  });

  it('wrong platform → PLATFORM_MISMATCH', async () => {
    world = await makeWorld();
    await world.publish('1.1.0', { platforms: ['physical'] });
    const e = await checkFails(world, 'PLATFORM_MISMATCH');
    expect(e.message).toContain('virtual');
  });

  it('minSourceVersion not met → SOURCE_VERSION_TOO_OLD', async () => {
    world = await makeWorld();
    await world.publish('1.1.0', { minSourceVersion: '1.0.5' });
    const e = await checkFails(world, 'SOURCE_VERSION_TOO_OLD');
    expect(e.message).toContain('1.0.5');
  });

  it('an older signed compat.yaml replayed → SERIAL_REPLAYED', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    await writeJsonAtomic(world.paths.history, { lastSerial: 7, rejected: [] });
    await checkFails(world, 'SERIAL_REPLAYED');
  });
});

describe('malformed documents (signed by the real key)', () => {
  it('malformed YAML → YAML_INVALID', async () => {
    world = await makeWorld();
    await resign(world, 'schema: 1\nserial: [1, 2\nplatforms: {\n');
    await checkFails(world, 'YAML_INVALID');
  });

  it('YAML alias bomb → YAML_INVALID', async () => {
    world = await makeWorld();
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    await resign(world, `${lines.join('\n')}\n`);
    await checkFails(world, 'YAML_INVALID');
  });

  it('a size written in hex (read as the same number) → COMPAT_INVALID naming the field', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const text = await fs.readFile(path.join(world.tree, 'compat.yaml'), 'utf8');
    const line = /^( {10}size: )(\d+)$/m.exec(text);
    expect(line).not.toBeNull();
    const [whole = '', key = '', decimal = ''] = line ?? [];
    const hex = `0x${Number(decimal).toString(16)}`;
    await resign(world, text.replace(whole, `${key}${hex}`));
    const e = await checkFails(world, 'COMPAT_INVALID');
    expect(e.message).toContain(
      `.size: expected a whole number in plain decimal digits, such as ${decimal} (got ${hex})`,
    );
  });

  it('duplicate keys → YAML_INVALID', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    const text = await fs.readFile(path.join(world.tree, 'compat.yaml'), 'utf8');
    await resign(world, text.replace(/^serial: (\d+)$/m, 'serial: $1\nserial: 999'));
    await checkFails(world, 'YAML_INVALID');
  });
});

describe('artifacts', () => {
  it('artifact hash mismatch → HASH_MISMATCH', async () => {
    world = await makeWorld();
    // The streaming download's check (adaptive.test.ts tampers with a chunk the adaptive path fetches).
    await world.publish('1.1.0', { chunkIndex: false });
    const file = path.join(world.tree, 'releases/1.1.0/root.img');
    const h = await fs.open(file, 'r+');
    await h.write(Buffer.from('tampered'), 0, 8, 4096);
    await h.close();
    const e = await updateFails(world, 'HASH_MISMATCH');
    expect(e.message).toContain('root.img');
    // Found by the read-back first (the download does not hash what the read-back checks), then
    // named by a second download checked in flight: the server's bytes, not the disk.
    expect(world.mirror.stats('/releases/1.1.0/root.img').requests).toBe(2);
    await running!.deps.log.flush();
    const log = (await fs.readFile(world.paths.logFile, 'utf8')).split('\n').filter(Boolean);
    expect(
      log.map((l) => JSON.parse(l)).filter((l) => l.msg.startsWith('read-back found the artifact wrong')),
    ).toMatchObject([{ artifact: 'root', error: { code: 'READBACK_MISMATCH' } }]);
  });

  // These failures are transient: without resumeDelaysMs: [] the agent would resume by itself
  // (download-resume.test.ts).
  it('truncated artifact → ARTIFACT_TRUNCATED', async () => {
    world = await makeWorld({ config: { http: { retries: 0, resumeDelaysMs: [] } } });
    await world.publish('1.1.0');
    // The image and the files beside it (its chunk pack: the update is adaptive).
    world.mirror.setFault('/releases/1.1.0/root.img*', { truncateAt: 100_000 });
    await updateFails(world, 'ARTIFACT_TRUNCATED');
  });

  it('server sends more than the declared size → SIZE_EXCEEDED', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    world.mirror.setFault('/releases/1.1.0/boot.img*', { extraBytes: 4096 });
    await updateFails(world, 'SIZE_EXCEEDED');
  });

  it('server drips 1 byte/s → TIMED_OUT', async () => {
    world = await makeWorld({
      config: {
        http: { minBytesPerSecond: 1024, minThroughputWindowMs: 2000, retries: 0, resumeDelaysMs: [] },
      },
    });
    await world.publish('1.1.0');
    world.mirror.setFault('/releases/1.1.0/boot.img*', { drip: 1 });
    await updateFails(world, 'TIMED_OUT');
  });

  it('no space left on the slot device → NO_SPACE', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    // Slot B's root partition is smaller than the release's root image.
    await fs.truncate(world.paths.partition('root', 'B'), 4 * 1024 * 1024);
    const e = await updateFails(world, 'NO_SPACE');
    expect(e.message).toContain('root_b');
  });
});

describe('the download server', () => {
  it.each([404, 500])('HTTP %i on compat.yaml → HTTP_STATUS', async (status) => {
    world = await makeWorld({ config: { http: { retries: 0 } } });
    await world.publish('1.1.0');
    world.mirror.setFault('/compat.yaml', { status });
    const e = await checkFails(world, 'HTTP_STATUS');
    expect(e.message).toContain(String(status));
  });

  it('redirect to another host → REDIRECT_REFUSED', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    world.mirror.setFault('/compat.yaml', { redirect: 'https://other.clgw.test/compat.yaml' });
    const e = await checkFails(world, 'REDIRECT_REFUSED');
    expect(e.message).toContain('other.clgw.test');
  });

  it('redirect to plain http → REDIRECT_REFUSED', async () => {
    world = await makeWorld();
    await world.publish('1.1.0');
    world.mirror.setFault('/compat.yaml', { redirect: `http://127.0.0.1:${world.mirror.port}/compat.yaml` });
    await checkFails(world, 'REDIRECT_REFUSED');
  });

  it('DNS failure → DNS_LOOKUP_FAILED naming the server', async () => {
    const dns = await startDnsServer({ records: {} });
    try {
      world = await makeWorld();
      const cfg = JSON.parse(await fs.readFile(world.paths.config, 'utf8'));
      await writeJsonAtomic(world.paths.config, {
        ...cfg,
        baseUrl: `https://download.clgw.test:${world.mirror.port}/`,
        dnsServers: [dns.address],
        http: { retries: 0 },
      });
      const e = await checkFails(world, 'DNS_LOOKUP_FAILED');
      expect(e.message).toContain('download.clgw.test');
      expect(e.message).toContain(dns.address);
    } finally {
      await dns.close();
    }
  });

  it('connection refused → CONNECTION_REFUSED naming host:port', async () => {
    world = await makeWorld({ config: { http: { retries: 0 } } });
    const cfg = JSON.parse(await fs.readFile(world.paths.config, 'utf8'));
    await writeJsonAtomic(world.paths.config, { ...cfg, baseUrl: 'https://127.0.0.1:9/' });
    const e = await checkFails(world, 'CONNECTION_REFUSED');
    expect(e.message).toContain('127.0.0.1:9');
  });

  it('untrusted TLS certificate → TLS_ERROR', async () => {
    world = await makeWorld({ trustMirror: false });
    await world.publish('1.1.0');
    await checkFails(world, 'TLS_ERROR');
  });
});
