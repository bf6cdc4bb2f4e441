/**
 * "Download logs" (SPEC.md §4): builds the archive, hands out a temporary link to it, revokes.
 * The agent owns it; the console and `clgw-log-download` ask through the local API, the portal
 * serves `GET /logs/<token>` through {@link LogDownloads.lookup}.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AgentConfig } from '@clgw/core/config.js';
import { ClgwError } from '@clgw/core/errors.js';
import { readNetwork } from '@clgw/core/network/network.js';
import type { Clock } from '@clgw/core/platform/clock.js';
import type { Logger } from '@clgw/core/platform/log.js';
import type { AppliancePaths } from '@clgw/core/platform/paths.js';
import { buildLogArchive } from './archive.js';
import { type LogLinkFile, LogLinks } from './links.js';
import { logLinkUrl } from './url.js';

export interface LogDownloadsDeps {
  paths: AppliancePaths;
  config: Pick<AgentConfig, 'logDownload' | 'portal' | 'lanInterface'>;
  clock: Clock;
  log: Logger;
  /** The agent's live status, saved in the archive as `status.json`. */
  status: () => Promise<unknown>;
}

/** What the API answers for a new link. */
export interface LogLinkView {
  url: string;
  /** ISO 8601. */
  expiresAt: string;
  ttlMinutes: number;
  /** Compressed size of the archive. */
  bytes: number;
  /** Files left out (size cap, links, special files), as MANIFEST.txt lists them. */
  skipped: number;
}

export class LogDownloads {
  private readonly links: LogLinks;
  private building = false;

  constructor(private readonly deps: LogDownloadsDeps) {
    this.links = new LogLinks({
      clock: deps.clock,
      ttlMs: deps.config.logDownload.ttlMinutes * 60_000,
      onError: (file, e) =>
        deps.log.warn('log archive not deleted', { file, error: (e as Error).message ?? String(e) }),
    });
  }

  /** Builds a fresh archive and a link to it (BUSY while another is being built). */
  async create(): Promise<LogLinkView> {
    if (this.building) throw new ClgwError('BUSY', 'a log archive is already being built');
    this.building = true;
    try {
      const { paths, config, clock, log } = this.deps;
      const portalUrl = (await fs.readFile(paths.portalUrl, 'utf8').catch(() => '')).trim();
      if (!portalUrl) {
        throw new ClgwError(
          'NOT_ALLOWED',
          `the portal's address is not known yet (no ${paths.portalUrl}: the agent writes it at start): no URL to serve logs at`,
          {
            details: { file: paths.portalUrl },
          },
        );
      }
      const archive = await buildLogArchive({
        paths,
        outDir: paths.logArchives,
        snapshotDir: paths.logSnapshots,
        maxBytes: config.logDownload.maxMiB * 1024 * 1024,
        now: clock.now(),
        journal: config.logDownload.journal,
        status: this.deps.status,
      });
      const { token, expiresAt } = await this.links.create({ file: archive.file, name: archive.name });
      const network = await readNetwork(paths);
      const ipv4 = network.settings.ipv4;
      const url = logLinkUrl(
        {
          portalUrl,
          listenHost: config.portal.host,
          staticAddress: ipv4.mode === 'static' ? ipv4.address : undefined,
          interfaceAddress: os.networkInterfaces()[config.lanInterface]?.find((a) => a.family === 'IPv4')
            ?.address,
        },
        token,
      );
      log.info('log download link created', {
        expiresAt: new Date(expiresAt).toISOString(),
        bytes: archive.bytes,
        files: archive.included.length,
        skipped: archive.skipped.length,
      });
      return {
        url,
        expiresAt: new Date(expiresAt).toISOString(),
        ttlMinutes: config.logDownload.ttlMinutes,
        bytes: archive.bytes,
        skipped: archive.skipped.length,
      };
    } finally {
      this.building = false;
    }
  }

  /** Ends every link now and deletes the archives. */
  async revoke(): Promise<{ revoked: number }> {
    const revoked = await this.links.revokeAll();
    this.deps.log.info('log download links revoked', { revoked });
    return { revoked };
  }

  /** The archive behind a token; undefined for anything else (the portal answers 404). */
  lookup(token: string): Promise<LogLinkFile | undefined> {
    return this.links.lookup(token);
  }

  /** At shutdown: no link outlives the agent that could serve it. */
  async stop(): Promise<void> {
    await this.links.revokeAll();
  }
}

/**
 * Empties the log archives' directory (`paths.logArchives`) at the agent's start, before any link
 * exists: what is there was left by an agent that ended without revoking its links (a crash,
 * SIGKILL, the OOM killer). Links live in the agent's memory only, so nothing could serve or
 * delete those archives any more, and on the appliance they sit in RAM (/run is a tmpfs) until
 * the next boot. Returns the names removed (none when the directory does not exist).
 */
export async function removeLeftoverArchives(dir: string): Promise<string[]> {
  const names = await fs.readdir(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  for (const name of names) await fs.rm(path.join(dir, name), { recursive: true, force: true });
  return names;
}
