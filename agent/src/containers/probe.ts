import http from 'node:http';

const PROBE_TIMEOUT_MS = 1000;

/**
 * One `GET http://127.0.0.1:<port><path>` of a service container (they run with the host's
 * network): the status and the first 4 KiB of the body, or the error's code — never a throw.
 */
export function probe(
  port: number,
  pathname: string,
): Promise<{ status: number; body: string; error?: string }> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: pathname, timeout: PROBE_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 4096) body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', (e) => resolve({ status: 0, body: '', error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) =>
      resolve({ status: 0, body: '', error: e.code ?? e.message }),
    );
  });
}
