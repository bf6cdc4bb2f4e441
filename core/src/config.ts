import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as z from 'zod';
import { ClgwError } from './errors.js';
import { readJsonFile } from './platform/atomic.js';
import type { AppliancePaths } from './platform/paths.js';
import { PLATFORMS, type Platform } from './release/schema.js';
import { PROFILE_NAMES } from './system/profiles.js';

/** The vendor's download server; a local mirror is configured in development and tests. */
export const DEFAULT_BASE_URL = 'https://download.mitel.io/';

const configSchema = z
  .object({
    /** Absent on the images: the ESP's platform file says which image this is (AppliancePaths.platformFile). */
    platform: z.enum(PLATFORMS).optional(),
    baseUrl: z.url({ protocol: /^https$/ }).default(DEFAULT_BASE_URL),
    /** Extra CA (PEM, path relative to the appliance root) trusted for the download server — a local mirror. */
    downloadCa: z.string().optional(),
    /** Resolve the download host through these servers instead of the system resolver. */
    dnsServers: z.array(z.string()).max(4).optional(),
    /** `systemd` on the appliance; `simulator` exits the agent so the boot emulator can "reboot". */
    reboot: z.enum(['systemd', 'simulator']).default('systemd'),
    /** The LAN port the network settings apply to (the image names the first NIC eth0). */
    lanInterface: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,15}$/)
      .default('eth0'),
    /**
     * How changed network settings take effect: `systemd` (networkctl reload/reconfigure,
     * hostnamectl) on the appliance; `netns` configures `lanInterface` inside the network
     * namespace `netns` with `ip` (the simulator's stand-in for a LAN port); `none` where there
     * is no interface to configure — the files are written either way.
     */
    networkApply: z.enum(['systemd', 'netns', 'none']).default('systemd'),
    netns: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/)
      .optional(),
    /**
     * The container engine's Docker-compatible API (Podman's service socket): an absolute path as
     * it is; a relative one under the appliance root.
     */
    engineSocket: z.string().min(1).default('run/podman/podman.sock'),
    /** Health port of each service on 127.0.0.1 for a first install (later: the container's own). */
    containerPorts: z
      .object({
        tunnel: z.number().int().min(1).max(65535).default(8081),
        micloud: z.number().int().min(1).max(65535).default(8082),
        freeswitch: z.number().int().min(1).max(65535).default(8083),
      })
      .strict()
      .default({ tunnel: 8081, micloud: 8082, freeswitch: 8083 }),
    /** How long a new container has to answer `GET /health` with 200. */
    containerHealthTimeoutMs: z.number().int().positive().max(600_000).default(60_000),
    /** Forces a performance profile; absent: chosen from the machine at every start (SPEC §6). */
    profile: z.enum(PROFILE_NAMES).optional(),
    /**
     * The OpenSSH server behind "Enable SSH access": `systemd` (ssh.service) on the appliance;
     * `simulator` runs `sshd -D` on 127.0.0.1:`port` with its files under the appliance root.
     * Either way only `account`, only with a certificate of the support CA (agent/src/ssh/).
     */
    ssh: z
      .object({
        server: z.enum(['systemd', 'simulator']).default('systemd'),
        port: z.number().int().min(1).max(65535).default(22),
        /**
         * The account support logs in to. The image's sshd allows `support` only (its
         * sshd_config is part of the read-only root); the simulator's follows this setting.
         */
        account: z
          .string()
          .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
          .default('support'),
      })
      .strict()
      .default({ server: 'systemd', port: 22, account: 'support' }),
    /**
     * The local portal (`http://cloudlink.local/`, `http://<ip>/`): its own process (clgw-portal),
     * which listens at `host`:`port` (on the appliance systemd's socket does, port 80) and reaches
     * the agent through run/clgw/portal.sock, whose group is `group` (the portal's own user's).
     */
    portal: z
      .object({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(1).max(65535).default(80),
        group: z
          .string()
          .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
          .default('clgw-portal'),
      })
      .strict()
      .default({ host: '0.0.0.0', port: 80, group: 'clgw-portal' }),
    /** Targets of the startup diagnostics (`clgw diagnose`); the download host is the base URL's. */
    diagnostics: z
      .object({
        ntpServer: z.string().min(1).default('0.mitel.pool.ntp.org'),
        /** The cloud's STUN server (host); absent: the STUN checks say "not configured". */
        stunServer: z.string().min(1).optional(),
        stunPorts: z
          .tuple([z.number().int().min(1).max(65535), z.number().int().min(1).max(65535)])
          .optional(),
        /** The cloud's SIP-TLS server (`host[:port]`, port 5061); absent: "not configured". */
        sipTlsServer: z.string().min(1).optional(),
        timeoutMs: z.number().int().positive().max(60_000).default(3000),
      })
      .strict()
      .default({ ntpServer: '0.mitel.pool.ntp.org', timeoutMs: 3000 }),
    /** "Download logs": how long a link lives, the archive's size cap, whether the journal goes in. */
    logDownload: z
      .object({
        ttlMinutes: z.number().int().min(1).max(1440).default(10),
        maxMiB: z.number().int().min(1).max(1024).default(64),
        journal: z.boolean().default(true),
      })
      .strict()
      .default({ ttlMinutes: 10, maxMiB: 64, journal: true }),
    /**
     * The portal's presence code (presence/presence.ts): how long each code is shown, and how long
     * the previous one is still taken after a timed change. Absent: 5 minutes and 60 s. Only ever
     * shorter (a lab, the tests): the file is root's, on the read-only root filesystem.
     */
    presence: z
      .object({
        lifetimeMs: z.number().int().min(1000).max(300_000).optional(),
        graceMs: z.number().int().min(0).max(60_000).optional(),
      })
      .strict()
      .default({}),
    /** Check for an update (and install it) each time the agent starts after a boot. */
    updateAtBoot: z.boolean().default(true),
    /** Deadline for each release health hook after a boot. */
    healthHookTimeoutMs: z.number().int().positive().max(600_000).default(60_000),
    /**
     * A cap on update downloads, in Mbit/s (10^6 bits), shared by every artifact byte — boot and
     * root, full or adaptive, container archives — so that an update leaves room on the
     * customer's uplink for the calls it carries (issue #22). Default: none.
     */
    downloadBudgetMbit: z.number().positive().max(100_000).optional(),
    /**
     * false: the budget holds only outside the update window — a run the window started (the
     * site's quiet hours) downloads at the link's rate; one at boot or a technician's is held.
     */
    downloadBudgetInWindow: z.boolean().default(true),
    /**
     * The voice service's event socket (FreeSWITCH, `auth` then `api show calls count`): before
     * anything that drops calls (the reboot into a new slot, a technician's Reboot) the agent
     * waits for no call to be up. Absent: no voice service to ask, nothing waits.
     */
    voice: z
      .object({
        host: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(1).max(65535).default(8021),
        /** The event socket's password, one line (relative: from the appliance root); never logged. */
        passwordFile: z.string().min(1),
        /** How often the voice service is asked while the agent waits. */
        pollMs: z.number().int().min(100).max(600_000).default(15_000),
        /** The deadline of one question (connect, auth, answer). */
        timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
        /**
         * How long the voice service may fail to answer before its silence counts as no calls (it
         * carries none while down); shorter failures keep the wait going.
         */
        unknownGraceMs: z.number().int().min(0).max(3_600_000).default(300_000),
        /**
         * The wait's deadline: this long after the end of the update window (its start plus the
         * fleet spread) that is open, else the next; without a window, this long after the wait
         * began. Past it, the agent restarts and logs the calls it cut.
         */
        deadlineAfterWindowMinutes: z
          .number()
          .int()
          .min(0)
          .max(24 * 60)
          .default(60),
      })
      .strict()
      .optional(),
    http: z
      .object({
        connectTimeoutMs: z.number().int().positive().optional(),
        responseTimeoutMs: z.number().int().positive().optional(),
        idleTimeoutMs: z.number().int().positive().optional(),
        minBytesPerSecond: z.number().int().nonnegative().optional(),
        minThroughputWindowMs: z.number().int().positive().optional(),
        retries: z.number().int().min(0).max(10).optional(),
        /**
         * Waits before the agent resumes, by itself, a download that a transient failure stopped
         * (default agent/src/actors/download-resume.ts's RESUME_DELAYS_MS; [] never: the update
         * fails at once, for Retry).
         */
        resumeDelaysMs: z.array(z.number().int().min(0).max(3_600_000)).max(20).optional(),
      })
      .strict()
      .default({}),
  })
  .strict();

export type AgentConfig = z.infer<typeof configSchema> & { platform: Platform };

/**
 * Reads `etc/clgw/agent.json`. `CLGW_BASE_URL` overrides the base URL (development only);
 * a missing or invalid file is a CONFIG_INVALID error naming the file and the field.
 */
export async function loadConfig(
  paths: AppliancePaths,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AgentConfig> {
  const raw = await readJsonFile(paths.config);
  if (raw === undefined) {
    throw new ClgwError('CONFIG_INVALID', `agent configuration ${paths.config} does not exist`, {
      details: { file: paths.config },
    });
  }
  const withEnv = env.CLGW_BASE_URL && typeof raw === 'object' ? { ...raw, baseUrl: env.CLGW_BASE_URL } : raw;
  const parsed = configSchema.safeParse(withEnv);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ClgwError(
      'CONFIG_INVALID',
      `agent configuration ${paths.config}: ${issue.path.join('.') || '(top)'}: ${issue.message}`,
      { details: { file: paths.config } },
    );
  }
  return { ...parsed.data, platform: parsed.data.platform ?? (await readPlatformFile(paths)) };
}

async function readPlatformFile(paths: AppliancePaths): Promise<Platform> {
  const file = paths.platformFile;
  const text = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new ClgwError(
      'CONFIG_INVALID',
      `agent configuration ${paths.config} has no platform and ${file} cannot be read: ${e.code ?? e.message}`,
      { details: { file, config: paths.config } },
    );
  });
  const value = text.trim();
  if (!(PLATFORMS as readonly string[]).includes(value)) {
    throw new ClgwError(
      'CONFIG_INVALID',
      `${file} says "${value.slice(0, 40)}", not one of ${PLATFORMS.join(', ')}`,
      {
        details: { file },
      },
    );
  }
  return value as Platform;
}

/** A path from the configuration, which is relative to the appliance root. */
export function configPath(paths: AppliancePaths, p: string): string {
  return path.join(paths.root, p);
}
