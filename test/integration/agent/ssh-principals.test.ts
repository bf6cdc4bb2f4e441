/**
 * The program sshd runs as AuthorizedPrincipalsCommand, run the way sshd runs it (`%u %t %k` of a
 * certificate made by the real ssh-keygen): it prints this appliance's principal for a support
 * certificate bound to it and valid for at most 24 hours, and nothing for anything else.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateSupportCa, issueSupportCert } from '../../../image/src/release/support-ca.js';
import { REPO } from '../../support/appliance.js';
import { recordSkip } from '../../support/skip.js';
import { newKey, run, signDirectly, sshToolsMissing } from '../../support/ssh.js';

const COMMAND = path.join(REPO, 'agent/dist/ssh/principals-command.js');
const ID = 'k3m9x2pq7rtw';
const skip = sshToolsMissing();
if (skip) recordSkip('test/integration/agent/ssh-principals.test.ts', skip);

let dir: string;
let ca: string;

/** Runs the command on a certificate (or key) file as sshd would: user, key type, base64 blob. */
function principals(file: string, args: string[] = ['--appliance-id', ID], user = 'support') {
  return fs.readFile(file, 'utf8').then(
    (text) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const [type, blob] = text.trim().split(' ') as [string, string];
        execFile(process.execPath, [COMMAND, ...args, user, type, blob], (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
        );
      }),
  );
}

describe.skipIf(skip)('AuthorizedPrincipalsCommand (agent/dist/ssh/principals-command.js)', () => {
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'clgw-principals-'));
    await generateSupportCa(dir);
    ca = path.join(dir, 'support-ca');
  });

  afterAll(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('a certificate from clgw-release support-cert for this appliance: its principal', async () => {
    const key = await newKey(dir, 'good');
    for (const hours of [1, 24]) {
      const cert = await issueSupportCert({
        ca,
        principals: [`appliance-${ID}`],
        hours,
        identity: 'jdoe',
        publicKey: `${key}.pub`,
      });
      expect(await principals(cert.file)).toEqual({ code: 0, stdout: `appliance-${ID}\n`, stderr: '' });
    }
  });

  it('reads the ID from the data partition on the appliance (--id-file here)', async () => {
    const key = await newKey(dir, 'idfile');
    const cert = await signDirectly(ca, key, {
      principals: ['clgw-support', `appliance-${ID}`],
      validity: '+2h',
    });
    const idFile = path.join(dir, 'appliance-id');
    await fs.writeFile(idFile, `${ID}\n`);
    expect((await principals(cert, ['--id-file', idFile])).stdout).toBe(`appliance-${ID}\n`);
    expect(await principals(cert, ['--id-file', path.join(dir, 'missing')])).toMatchObject({
      stdout: '',
      stderr: 'clgw-ssh-principals: refused: this appliance has no ID yet\n',
    });
  });

  it.each([
    ['another appliance', ['clgw-support', 'appliance-zzzzzzzzzzzz'], '+2h', `does not name appliance-${ID}`],
    ['no support role', [`appliance-${ID}`], '+2h', 'does not name clgw-support'],
    ['valid for 30 days', ['clgw-support', `appliance-${ID}`], '+30d', 'valid for 720 h'],
    ['valid for 25 hours', ['clgw-support', `appliance-${ID}`], '+25h', 'valid for 25 h'],
    ['valid forever', ['clgw-support', `appliance-${ID}`], 'always:forever', 'valid for ever'],
  ])('%s: nothing printed (refused)', async (name, names, validity, reason) => {
    const key = await newKey(dir, name.replaceAll(' ', '-'));
    const cert = await signDirectly(ca, key, { principals: names, validity });
    const r = await principals(cert);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(reason);
  });

  it('a host certificate, a plain key, another account: refused', async () => {
    const key = await newKey(dir, 'host');
    const sign = await run('ssh-keygen', [
      '-q',
      '-s',
      ca,
      '-h',
      '-I',
      'host',
      '-n',
      `clgw-support,appliance-${ID}`,
      '-V',
      '+1h',
      `${key}.pub`,
    ]);
    expect(sign.code).toBe(0);
    expect((await principals(`${key}-cert.pub`)).stderr).toContain('not a user certificate');
    expect((await principals(`${key}.pub`)).stderr).toContain('a plain ssh-ed25519 key, no certificate');
    const good = await issueSupportCert({
      ca,
      principals: [`appliance-${ID}`],
      hours: 1,
      identity: 'jdoe',
      publicKey: `${key}.pub`,
    });
    expect((await principals(good.file, ['--appliance-id', ID], 'root')).stderr).toContain(
      'user root is not support',
    );
  });
});
