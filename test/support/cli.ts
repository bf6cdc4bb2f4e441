/**
 * Drives the built `clgw` CLI and the agent's API socket the way a technician's tools do: the
 * CLI as a process (exit code, stdout, stderr), the API with raw bodies a client would not send.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { REPO } from './appliance.js';

export const CLI = path.join(REPO, 'agent/dist/cli/clgw.js');

/** Runs `clgw <args>` against the appliance at `root` (killed after `timeoutMs`, if given). */
export function runClgw(
  root: string,
  args: string[],
  timeoutMs?: number,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, CLGW_ROOT: root }, ...(timeoutMs ? { timeout: timeoutMs } : {}) },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** POSTs `body` as it is to the API socket; the answer's status and parsed JSON. */
export function rawPost<T = unknown>(
  socketPath: string,
  endpoint: string,
  body: string,
): Promise<{ status: number; json: T }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: endpoint, method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) as T }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The CLI's output with its wrapping undone (it fits 80 columns: a long line continues, indented,
 * on the next): each line break and the indentation after it become one space.
 */
export function unwrap(text: string): string {
  return text.replace(/\n +/g, ' ');
}
