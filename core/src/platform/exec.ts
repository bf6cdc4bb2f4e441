import { execFile as execFileCb } from 'node:child_process';
import { ClgwError } from '../errors.js';

export interface ExecResult {
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  maxBuffer?: number;
}

/** Runs a program with an argument vector — never a shell string — and names it when it fails. */
export function execFile(
  bin: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFileCb(
      bin,
      args,
      {
        timeout: options.timeoutMs ?? 60_000,
        env: options.env ?? process.env,
        cwd: options.cwd,
        maxBuffer: options.maxBuffer ?? 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (error) {
          const e = error as NodeJS.ErrnoException & { killed?: boolean; code?: number | string };
          const why = e.killed
            ? `timed out after ${options.timeoutMs ?? 60_000} ms`
            : e.message.split('\n')[0];
          reject(
            new ClgwError(
              'INTERNAL',
              `${bin} ${args.join(' ')}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`,
              {
                cause: error,
                details: { bin, args: [...args], exitCode: e.code, stderr: stderr.trim() },
              },
            ),
          );
          return;
        }
        resolve({ stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
