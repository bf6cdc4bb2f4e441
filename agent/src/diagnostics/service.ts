import { readNetwork } from '@clgw/core/network/network.js';
import { readJsonFile, writeJsonAtomic } from '@clgw/core/platform/atomic.js';
import type { Deps } from '../deps.js';
import type { DiagnosticsConfig, DiagnosticsReport } from './checks.js';
import { formatDiagnostics, runDiagnostics } from './run.js';

/**
 * The diagnostics' targets from what the appliance knows: the download host from the base URL,
 * DNS servers from the agent's configuration or else the static network settings (empty: the
 * system's resolvers, i.e. DHCP's), NTP/STUN/SIP-TLS from the configuration.
 */
export async function diagnosticsConfig(
  deps: Pick<Deps, 'config' | 'paths' | 'downloadCa'>,
): Promise<DiagnosticsConfig> {
  const c = deps.config;
  const network = await readNetwork(deps.paths);
  const staticDns = network.settings.ipv4.mode === 'static' ? network.settings.ipv4.dns : [];
  return {
    dnsServers: c.dnsServers?.length ? c.dnsServers : staticDns,
    downloadHost: new URL(c.baseUrl).host,
    ntpServer: c.diagnostics.ntpServer,
    ...(c.diagnostics.stunServer ? { stunHost: c.diagnostics.stunServer } : {}),
    ...(c.diagnostics.stunPorts ? { stunPorts: c.diagnostics.stunPorts } : {}),
    ...(c.diagnostics.sipTlsServer ? { sipTlsServer: c.diagnostics.sipTlsServer } : {}),
    ...(deps.downloadCa ? { ca: deps.downloadCa } : {}),
    timeoutMs: c.diagnostics.timeoutMs,
  };
}

/**
 * Runs the startup diagnostics, keeps the report on the data partition (`diagnostics.json`, for
 * status, the console and the portal, also while the agent is down) and logs one line per check.
 */
export async function diagnose(deps: Deps): Promise<DiagnosticsReport> {
  const report = await runDiagnostics(await diagnosticsConfig(deps), { now: () => deps.clock.now() });
  await writeJsonAtomic(deps.paths.diagnostics, report);
  const lines = formatDiagnostics(report);
  if (report.ok) deps.log.info(lines.join('\n'));
  else deps.log.warn(lines.join('\n'));
  return report;
}

/** The last report, or undefined when none was made (or it cannot be read). */
export async function readDiagnostics(file: string): Promise<DiagnosticsReport | undefined> {
  return ((await readJsonFile(file).catch(() => undefined)) as DiagnosticsReport | undefined) ?? undefined;
}
