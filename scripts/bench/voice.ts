/**
 * A stand-in voice call across the bench's shaped link (issue #22): what the customer's calls see
 * while the agent downloads a release over the same uplink, with and without its download budget.
 *
 * Two ends of scripts/bench/voice-peer.mjs, each sending 50 RTP packets/s of 172 bytes (G.711
 * PCMU, 20 ms: 160 bytes of audio + the 12-byte header) and receiving the other's:
 *   far end    in the bench process, bound to the link's host end (`link.mirrorHost`), as a worker
 *              thread: its timers and timestamps do not wait behind the mirror in the main thread
 *   appliance  `ip netns exec <link.netns> node voice-peer.mjs` bound to the namespace end
 * So the stream to the appliance crosses the link's shaper and its random loss, behind the
 * download, as a call's downlink does; the stream from it crosses the unshaped direction (which
 * carries only the download's ACKs).
 *
 * Counted per direction, over the packets the sender sent inside a window (the agent's download,
 * `update state: downloading` → `verifying` in its log; or a fixed span for the baseline):
 *   loss     from sequence numbers: expected (last − first + 1 of the sent ones) − received
 *   jitter   RFC 3550 §6.4.1 interarrival jitter, in ms: J += (|D| − J)/16 per packet in arrival
 *            order, D = (Rj − Ri) − (Sj − Si) (arrival times vs RTP timestamps); its largest value
 *            in the window (what the worst RTCP report would carry) and its mean
 * The first part is pure (unit-tested in test/unit/tools/bench-voice.test.ts); the second starts,
 * stops and reads the two ends.
 */
import type { ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { parseLog } from './agent-log.js';
import { BenchBroken, spawnTracked, stopChild } from './common.js';
import type { Link } from './link.js';

/** The stream's shape: G.711 at 20 ms frames. */
export const VOICE = {
  packetsPerSecond: 50,
  frameMs: 20,
  clockHz: 8000,
  headerBytes: 12,
  payloadBytes: 160,
  payloadType: 0,
} as const;
export const VOICE_PACKET_BYTES = VOICE.headerBytes + VOICE.payloadBytes;

// ---------------------------------------------------------------------------------------------
// Pure: packets, sequence numbers, loss and jitter

export interface RtpHeader {
  version: number;
  padding: boolean;
  extension: boolean;
  csrcCount: number;
  marker: boolean;
  payloadType: number;
  /** 16 bits, as on the wire. */
  sequence: number;
  /** 32 bits, as on the wire. */
  timestamp: number;
  ssrc: number;
}

/** The fixed 12-byte RTP header (RFC 3550 §5.1) at the start of `bytes`; undefined if too short. */
export function parseRtpHeader(bytes: Uint8Array): RtpHeader | undefined {
  if (bytes.length < 12) return undefined;
  const u16 = (i: number) => (bytes[i]! << 8) | bytes[i + 1]!;
  const u32 = (i: number) =>
    ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
  return {
    version: bytes[0]! >> 6,
    padding: (bytes[0]! & 0x20) !== 0,
    extension: (bytes[0]! & 0x10) !== 0,
    csrcCount: bytes[0]! & 0x0f,
    marker: (bytes[1]! & 0x80) !== 0,
    payloadType: bytes[1]! & 0x7f,
    sequence: u16(2),
    timestamp: u32(4),
    ssrc: u32(8),
  };
}

/**
 * The packet index (0 for the stream's first packet, whose sequence number is `seq0`) that a
 * 16-bit sequence number stands for: of all indexes with that sequence number, the one nearest
 * `near` (the highest index received so far), as RFC 3550 A.1 extends sequence numbers across
 * their wrap at 65536.
 */
export function packetIndex(sequence: number, seq0: number, near: number): number {
  const delta = (((sequence - seq0 - near) % 65536) + 65536) % 65536;
  return near + (delta >= 32768 ? delta - 65536 : delta);
}

/** One received packet: its index in the sender's stream, its RTP timestamp, its arrival (ms). */
export interface Arrival {
  index: number;
  rtpTimestamp: number;
  arrivalMs: number;
}

/** What one end of voice-peer.mjs recorded of a received packet: [arrival ms, bytes, header hex]. */
export type ReceivedRecord = [number, number, string];
/** What one end recorded of a sent packet: [index, send time ms]. */
export type SentRecord = [number, number];

/**
 * The received packets that belong to the stream `stream` (version 2, PT 0, its SSRC, 172 bytes)
 * as arrivals in arrival order, and how many did not: on the bench's own link, a packet of anything
 * else is a fault of the bench.
 */
export function decodeArrivals(
  records: readonly ReceivedRecord[],
  stream: { ssrc: number; seq0: number },
): { arrivals: Arrival[]; foreign: number } {
  const arrivals: Arrival[] = [];
  let foreign = 0;
  let highest = 0;
  for (const [arrivalMs, bytes, hex] of records) {
    const h = parseRtpHeader(Uint8Array.from(Buffer.from(hex, 'hex')));
    if (
      !h ||
      bytes !== VOICE_PACKET_BYTES ||
      h.version !== 2 ||
      h.payloadType !== VOICE.payloadType ||
      h.ssrc !== stream.ssrc
    ) {
      foreign++;
      continue;
    }
    const index = packetIndex(h.sequence, stream.seq0, highest);
    highest = Math.max(highest, index);
    arrivals.push({ index, rtpTimestamp: h.timestamp, arrivalMs });
  }
  return { arrivals, foreign };
}

/**
 * RFC 3550 §6.4.1 interarrival jitter over packets in arrival order, in ms: for each packet after
 * the first, D = (Rj − Ri) − (Sj − Si) against the one received before it (RTP timestamps taken
 * modulo 2^32, at `clockHz`), then J += (|D| − J)/16, J starting at 0. Returns J's largest value,
 * its mean over the packets after the first, and its last.
 */
export function interarrivalJitter(
  arrivals: readonly { rtpTimestamp: number; arrivalMs: number }[],
  clockHz: number = VOICE.clockHz,
): { peakMs: number; meanMs: number; lastMs: number } {
  let j = 0;
  let peak = 0;
  let sum = 0;
  for (let k = 1; k < arrivals.length; k++) {
    const a = arrivals[k - 1]!;
    const b = arrivals[k]!;
    // `| 0`: the timestamp difference as a signed 32-bit number, right across the wrap.
    const sentMs = (((b.rtpTimestamp - a.rtpTimestamp) | 0) * 1000) / clockHz;
    const d = b.arrivalMs - a.arrivalMs - sentMs;
    j += (Math.abs(d) - j) / 16;
    peak = Math.max(peak, j);
    sum += j;
  }
  const n = arrivals.length - 1;
  return { peakMs: peak, meanMs: n > 0 ? sum / n : 0, lastMs: j };
}

/** One direction of the call over a window. */
export interface DirectionStats {
  /** Packets the sender sent in the window: last − first + 1 of their indexes. */
  expected: number;
  /** Of those, how many arrived (each counted once). */
  received: number;
  lost: number;
  lossPct: number;
  /** RFC 3550 jitter (ms) of the window's packets: largest, mean, last. */
  jitterMs: number;
  jitterMeanMs: number;
  jitterLastMs: number;
}

/**
 * Loss and jitter of the packets a sender sent within [fromMs, toMs] (epoch ms, its own send
 * times): the window is a run of indexes first…last; packets of other indexes, and a second copy
 * of one, are left out.
 */
export function directionStats(
  sent: readonly SentRecord[],
  arrivals: readonly Arrival[],
  window: { fromMs: number; toMs: number },
): DirectionStats {
  const inWindow = sent.filter(([, at]) => at >= window.fromMs && at <= window.toMs).map(([i]) => i);
  if (inWindow.length === 0) throw new Error('no packet was sent in the window');
  const first = Math.min(...inWindow);
  const last = Math.max(...inWindow);
  const seen = new Set<number>();
  const counted: Arrival[] = [];
  for (const a of arrivals) {
    if (a.index < first || a.index > last || seen.has(a.index)) continue;
    seen.add(a.index);
    counted.push(a);
  }
  const expected = last - first + 1;
  const lost = expected - counted.length;
  const j = interarrivalJitter(counted);
  return {
    expected,
    received: counted.length,
    lost,
    lossPct: (100 * lost) / expected,
    jitterMs: j.peakMs,
    jitterMeanMs: j.meanMs,
    jitterLastMs: j.lastMs,
  };
}

/** Both directions of the call over one window. */
export interface CallStats {
  /** Host end → namespace: the downlink, through the shaper and the loss, behind the download. */
  toAppliance: DirectionStats;
  /** Namespace → host end: the uplink, beside the download's ACKs. */
  fromAppliance: DirectionStats;
  windowSeconds: number;
}

/** The worse of the two directions: loss % and jitter (ms), each the larger of the two. */
export function worse(c: CallStats): { lossPct: number; jitterMs: number } {
  return {
    lossPct: Math.max(c.toAppliance.lossPct, c.fromAppliance.lossPct),
    jitterMs: Math.max(c.toAppliance.jitterMs, c.fromAppliance.jitterMs),
  };
}

/**
 * The agent's download in its log: `update state: downloading` → the first `update state:
 * verifying` after it (ms since the epoch), or undefined while either is missing.
 */
export function downloadWindow(logText: string): { fromMs: number; toMs: number } | undefined {
  const lines = parseLog(logText);
  const from = lines.find((l) => l.msg === 'update state: downloading');
  const to = from && lines.find((l) => l.msg === 'update state: verifying' && l.at >= from.at);
  return from && to ? { fromMs: from.at, toMs: to.at } : undefined;
}

/** One end's stream: chosen by the bench, given to the end that sends it. */
export interface PeerStream {
  ssrc: number;
  seq0: number;
  ts0: number;
}

/** What an end reports once stopped. */
export interface Report {
  sent: SentRecord[];
  received: ReceivedRecord[];
}

/** Both ends' records once the call stopped. */
export interface CallRecords {
  startAt: number;
  far: { stream: PeerStream; report: Report };
  appliance: { stream: PeerStream; report: Report };
}

/** Both directions' figures over a window, from the two ends' records. */
export function callStats(r: CallRecords, window: { fromMs: number; toMs: number }): CallStats {
  const direction = (
    what: string,
    sender: CallRecords['far'],
    receiver: CallRecords['far'],
  ): DirectionStats => {
    const { arrivals, foreign } = decodeArrivals(receiver.report.received, sender.stream);
    if (foreign > 0)
      throw new BenchBroken(`voice ${what}: ${foreign} received packet(s) are not the stream's RTP packets`);
    try {
      return directionStats(sender.report.sent, arrivals, window);
    } catch (e) {
      throw new BenchBroken(`voice ${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  return {
    toAppliance: direction('to the appliance', r.far, r.appliance),
    fromAppliance: direction('from the appliance', r.appliance, r.far),
    windowSeconds: (window.toMs - window.fromMs) / 1000,
  };
}

// ---------------------------------------------------------------------------------------------
// The two ends

const PEER = fileURLToPath(new URL('./voice-peer.mjs', import.meta.url));
/** Packets still in flight when the senders stop (the shaper queues up to 50 ms) are waited for. */
const DRAIN_MS = 500;
/** Each end stops sending by itself after this long, should the bench never stop it. */
const MAX_MS = 30 * 60 * 1000;
/** Time for both ends to get their start command before the first packet is due. */
const START_DELAY_MS = 300;
const ANSWER_TIMEOUT_MS = 15_000;

/** A voice-peer.mjs end: its answers in order, and how to command and dispose of it. */
interface End {
  stream: PeerStream;
  next(what: string): Promise<Record<string, unknown>>;
  send(m: Record<string, unknown>): void;
  close(): Promise<void>;
}

function newStream(): PeerStream {
  // Random SSRC, first sequence number and timestamp, as RFC 3550 §5.1 asks of a sender.
  return { ssrc: randomInt(1, 2 ** 32 - 1), seq0: randomInt(0, 65536), ts0: randomInt(0, 2 ** 32 - 1) };
}

/** An answer queue: messages as they come, waited for one at a time with a deadline. */
function answers(label: string) {
  const queue: Record<string, unknown>[] = [];
  const waiting: ((m: Record<string, unknown> | Error) => void)[] = [];
  let failed: Error | undefined;
  return {
    push(m: Record<string, unknown>) {
      const w = waiting.shift();
      if (w) w(m);
      else queue.push(m);
    },
    fail(e: Error) {
      failed = e;
      for (const w of waiting.splice(0)) w(e);
    },
    async next(what: string): Promise<Record<string, unknown>> {
      const queued = queue.shift();
      if (queued) return queued;
      if (failed) throw failed;
      let timer: NodeJS.Timeout | undefined;
      const got = await new Promise<Record<string, unknown> | Error>((resolve) => {
        waiting.push(resolve);
        timer = setTimeout(() => {
          // Out of the queue, so a late answer is not handed to a wait that has given up.
          waiting.splice(waiting.indexOf(resolve), 1);
          resolve(new BenchBroken(`voice ${label}: no ${what} within ${ANSWER_TIMEOUT_MS / 1000} s`));
        }, ANSWER_TIMEOUT_MS);
      }).finally(() => clearTimeout(timer));
      if (got instanceof Error) throw got;
      return got;
    },
  };
}

/** The far end: a worker thread of the bench bound to the link's host end. */
function hostEnd(link: Link): End {
  const stream = newStream();
  const q = answers('far end (worker)');
  // No tsx hooks in the worker: the peer is plain JavaScript.
  const worker = new Worker(PEER, {
    execArgv: [],
    workerData: { bind: link.mirrorHost, ...stream, maxMs: MAX_MS },
  });
  worker.on('message', (m: Record<string, unknown>) => q.push(m));
  worker.on('error', (e) => q.fail(new BenchBroken(`voice far end (worker): ${e.message}`)));
  worker.on('exit', (code) => q.fail(new BenchBroken(`voice far end (worker) exited with ${code}`)));
  return {
    stream,
    next: q.next,
    send: (m) => worker.postMessage(m),
    close: async () => {
      await worker.terminate();
    },
  };
}

/** The appliance's end: `node voice-peer.mjs` in the link's namespace, bound to its end. */
function applianceEnd(link: Link): End {
  const stream = newStream();
  const q = answers('appliance end');
  const config = JSON.stringify({ bind: link.applianceHost, ...stream, maxMs: MAX_MS });
  const child: ChildProcess = spawnTracked(
    'ip',
    ['netns', 'exec', link.netns, process.execPath, PEER, config],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let buffered = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) q.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  child.once('error', (e) => q.fail(new BenchBroken(`voice appliance end: ${e.message}`)));
  child.once('exit', (code, signal) =>
    q.fail(
      new BenchBroken(
        `voice appliance end (ip netns exec ${link.netns} node voice-peer.mjs) exited: ${signal ?? code}` +
          (stderr.trim() ? `: ${stderr.trim()}` : ''),
      ),
    ),
  );
  return {
    stream,
    next: q.next,
    send: (m) => child.stdin?.write(`${JSON.stringify(m)}\n`),
    close: async () => {
      // Closing stdin ends it; a peer that does not end is stopped.
      child.stdin?.end();
      const exited =
        child.exitCode !== null || child.signalCode !== null
          ? Promise.resolve()
          : new Promise<void>((r) => child.once('exit', () => r()));
      const timer = setTimeout(() => void stopChild(child, 1000), 5000);
      await exited.finally(() => clearTimeout(timer));
    },
  };
}

/** A call under way: `stop` ends the sending and collects; `close` disposes of both ends. */
export interface Call {
  /** Epoch ms at which the first packet of each end was due. */
  startAt: number;
  stop(): Promise<CallRecords>;
  close(): Promise<void>;
}

/** Starts both ends and, once both are bound, the two streams (first packets due together). */
export async function startCall(link: Link): Promise<Call> {
  const ends: End[] = [];
  const closeAll = async () => {
    for (const e of ends.splice(0)) await e.close().catch(() => undefined);
  };
  try {
    const far = hostEnd(link);
    ends.push(far);
    const appliance = applianceEnd(link);
    ends.push(appliance);
    const farPort = Number((await far.next('ready')).ready);
    const appliancePort = Number((await appliance.next('ready')).ready);
    const startAt = performance.timeOrigin + performance.now() + START_DELAY_MS;
    far.send({ cmd: 'start', peer: link.applianceHost, peerPort: appliancePort, startAt });
    appliance.send({ cmd: 'start', peer: link.mirrorHost, peerPort: farPort, startAt });
    let stopped: Promise<CallRecords> | undefined;
    return {
      startAt,
      stop() {
        stopped ??= (async () => {
          far.send({ cmd: 'stop', drainMs: DRAIN_MS });
          appliance.send({ cmd: 'stop', drainMs: DRAIN_MS });
          const farReport = (await far.next('report')).report as Report;
          const applianceReport = (await appliance.next('report')).report as Report;
          return {
            startAt,
            far: { stream: far.stream, report: farReport },
            appliance: { stream: appliance.stream, report: applianceReport },
          };
        })();
        return stopped;
      },
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const epochMs = () => performance.timeOrigin + performance.now();

/** Lead of the stream before what it measures: the first second is not counted. */
export const VOICE_LEAD_MS = 1000;

/** The call alone on the link for `seconds` (after the lead): the floor of this machine's noise. */
export async function callAlone(link: Link, seconds: number): Promise<CallStats> {
  const call = await startCall(link);
  try {
    const fromMs = call.startAt + VOICE_LEAD_MS;
    const toMs = fromMs + seconds * 1000;
    await sleep(toMs - epochMs());
    return callStats(await call.stop(), { fromMs, toMs });
  } finally {
    await call.close();
  }
}

/** The hooks an agent run (agent-run.ts) takes to carry the call alongside it. */
export interface UpdateHooks {
  beforeAgent(): Promise<void>;
  during(child: ChildProcess): Promise<void>;
}

/**
 * The call across one agent run: started after the appliance's boot pass, a second ahead of the
 * agent (so its first request meets a stream already flowing), stopped once the agent's log says
 * the download is over (or the agent has ended), and counted over the download window only.
 * `logFile` is the agent's log (read while it runs: the run removes the appliance root after).
 */
export async function callDuringUpdate<T>(
  link: Link,
  logFile: string,
  update: (hooks: UpdateHooks) => Promise<T>,
): Promise<{ call: CallStats; result: T }> {
  let call: Call | undefined;
  let records: CallRecords | undefined;
  let window: { fromMs: number; toMs: number } | undefined;
  try {
    const result = await update({
      async beforeAgent() {
        call = await startCall(link);
        await sleep(call.startAt + VOICE_LEAD_MS - epochMs());
      },
      async during(child) {
        const ended = () => child.exitCode !== null || child.signalCode !== null;
        for (;;) {
          const text = await fs.readFile(logFile, 'utf8').catch(() => '');
          window = downloadWindow(text);
          if (window || ended() || text.includes('"update state: failed"')) break;
          await sleep(100);
        }
        // The ends stay up until the agent's run is over (closed below), so that no child of the
        // bench ends during it.
        records = await call!.stop();
      },
    });
    if (!records) throw new BenchBroken('voice: the call was not stopped during the agent run');
    if (!window) throw new BenchBroken("voice: the agent's log has no download (downloading → verifying)");
    return { call: callStats(records, window), result };
  } finally {
    await call?.close();
  }
}
