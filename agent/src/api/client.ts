import http from 'node:http';
import { ClgwError, isErrorCode } from '@clgw/core/errors.js';
import type { NetworkView } from '@clgw/core/network/network.js';
import type { NetworkInput } from '@clgw/core/network/settings.js';
import type { ContainersView } from '../containers/view.js';
import type { DiagnosticsReport } from '../diagnostics/checks.js';
import type { LogLinkView } from '../logs/service.js';
import type { describeProxy } from '../network/proxy.js';
import type { PresenceView } from '../presence/presence.js';
import type { ScheduleView } from '../schedule/scheduler.js';

type ProxyView = ReturnType<typeof describeProxy>;

import type { SshView } from '../ssh/view.js';
import type { Status } from '../status.js';

/** A client of the agent's local API over its unix socket. */
export class AgentClient {
  constructor(
    private readonly socketPath: string,
    private readonly timeoutMs = 310_000,
  ) {}

  status(): Promise<Status> {
    return this.call('GET', '/v1/status') as Promise<Status>;
  }

  /** The code the portal asks for Reboot and Factory Reset (root's socket only: for the console's screens). */
  presence(): Promise<PresenceView> {
    return this.call('GET', '/v1/presence') as Promise<PresenceView>;
  }

  containers(): Promise<ContainersView> {
    return this.call('GET', '/v1/containers') as Promise<ContainersView>;
  }

  upgradeContainers(force: boolean): Promise<ContainersView> {
    return this.call('POST', '/v1/containers/update', { force }) as Promise<ContainersView>;
  }

  ssh(): Promise<SshView> {
    return this.call('GET', '/v1/ssh') as Promise<SshView>;
  }

  setSsh(enabled: boolean): Promise<SshView> {
    return this.call('POST', '/v1/ssh', { enabled }) as Promise<SshView>;
  }

  diagnose(): Promise<DiagnosticsReport> {
    return this.call('POST', '/v1/diagnose', {}) as Promise<DiagnosticsReport>;
  }

  proxy(): Promise<{ proxy: ProxyView }> {
    return this.call('GET', '/v1/proxy') as Promise<{ proxy: ProxyView }>;
  }

  setProxy(body: Record<string, unknown>): Promise<{ proxy: ProxyView }> {
    return this.call('POST', '/v1/proxy', body) as Promise<{ proxy: ProxyView }>;
  }

  schedule(): Promise<ScheduleView> {
    return this.call('GET', '/v1/schedule') as Promise<ScheduleView>;
  }

  setSchedule(body: Record<string, unknown>): Promise<ScheduleView> {
    return this.call('POST', '/v1/schedule', body) as Promise<ScheduleView>;
  }

  network(): Promise<NetworkView> {
    return this.call('GET', '/v1/network') as Promise<NetworkView>;
  }

  changeNetwork(input: NetworkInput): Promise<NetworkView> {
    return this.call('POST', '/v1/network', input) as Promise<NetworkView>;
  }

  /** Builds a log archive; the temporary URL it is served at and its expiry. */
  createLogLink(): Promise<LogLinkView> {
    return this.call('POST', '/v1/logs', {}) as Promise<LogLinkView>;
  }

  revokeLogLinks(): Promise<{ revoked: number }> {
    return this.call('DELETE', '/v1/logs') as Promise<{ revoked: number }>;
  }

  post(endpoint: string, body: Record<string, unknown> = {}): Promise<Status> {
    return this.call('POST', endpoint, body) as Promise<Status>;
  }

  private call(method: string, endpoint: string, body?: unknown): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request(
        {
          socketPath: this.socketPath,
          path: endpoint,
          method,
          timeout: this.timeoutMs,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(
                new ClgwError('INTERNAL', `the agent answered ${endpoint} with something that is not JSON`),
              );
              return;
            }
            const err = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
            if ((res.statusCode ?? 500) >= 400 && err) {
              reject(
                new ClgwError(isErrorCode(err.code) ? err.code : 'INTERNAL', String(err.message), {
                  details: { status: res.statusCode },
                }),
              );
              return;
            }
            resolve(parsed);
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        reject(
          new ClgwError(
            'AGENT_UNREACHABLE',
            `the agent is not reachable on ${this.socketPath}: ${e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? 'not running' : e.message}`,
            { cause: e, transient: true, details: { socket: this.socketPath } },
          ),
        );
      });
      req.end(payload);
    });
  }
}
