/**
 * One end of the bench's stand-in voice call (scripts/bench/voice.ts): a UDP socket that sends an
 * RTP stream as a G.711 phone would (PT 0 PCMU, 20 ms frames: 160 bytes of audio behind a 12-byte
 * header, sequence +1 and timestamp +160 per packet, at 50 packets/s) and records every packet it
 * receives with its arrival time. The numbers are computed by the bench from what this end
 * reports, so this file holds no statistics; it is plain JavaScript so that `node` alone runs it
 * inside the link's network namespace, and the bench's own end runs it as a worker thread (its own
 * event loop, so the mirror's work in the bench's main thread does not delay its timestamps).
 *
 * Configuration: the worker's workerData, or the child's argv[2] as JSON:
 *   { bind, ssrc, seq0, ts0, maxMs }
 * Commands (worker messages, or JSON lines on the child's stdin) and answers (worker messages, or
 * JSON lines on its stdout):
 *   (on start)                                   → { ready: port }
 *   { cmd: 'start', peer, peerPort, startAt }    sends packet i at startAt + 20 ms·i (epoch ms)
 *   { cmd: 'stop', drainMs }                     stops sending, receives for drainMs more, then
 *                                                → { report: { sent: [[i, atMs]…],
 *                                                              received: [[atMs, bytes, hex of the header]…] } }
 * The child exits when its stdin closes (the bench closes it after the agent's run, so that no
 * child of the bench ends during one: see agent-run.ts), or when its parent is gone.
 */
import dgram from 'node:dgram';
import readline from 'node:readline';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';

const FRAME_MS = 20;
const SAMPLES_PER_FRAME = 160;
const PAYLOAD_BYTES = 160;
const HEADER_BYTES = 12;
/** μ-law silence: the stand-in carries no audio, only its size. */
const SILENCE = 0xff;

const config = isMainThread ? JSON.parse(process.argv[2] ?? '{}') : workerData;
const answer = isMainThread
  ? (m) => process.stdout.write(`${JSON.stringify(m)}\n`)
  : (m) => parentPort.postMessage(m);

// Epoch milliseconds with sub-millisecond resolution (monotonic within a run): arrival and send
// times are compared with the agent's log, which is stamped from the same system clock.
const now = () => performance.timeOrigin + performance.now();

const socket = dgram.createSocket('udp4');
const received = [];
const sent = [];
socket.on('message', (msg) => {
  const at = now();
  received.push([at, msg.length, msg.subarray(0, HEADER_BYTES).toString('hex')]);
});

let timer;
let sending = false;

function packet(i) {
  const p = Buffer.alloc(HEADER_BYTES + PAYLOAD_BYTES, SILENCE);
  p[0] = 0x80; // version 2, no padding, no extension, no CSRC
  p[1] = i === 0 ? 0x80 : 0x00; // marker on the first packet of the talkspurt (RFC 3551 §4.1), PT 0
  p.writeUInt16BE((config.seq0 + i) & 0xffff, 2);
  p.writeUInt32BE((config.ts0 + SAMPLES_PER_FRAME * i) >>> 0, 4);
  p.writeUInt32BE(config.ssrc >>> 0, 8);
  return p;
}

function start({ peer, peerPort, startAt }) {
  sending = true;
  let i = 0;
  // Drift-free: packet i is due at startAt + 20 ms·i, whatever the timers did before; a late
  // wake-up sends every packet already due, as a phone's audio thread catching up would.
  const tick = () => {
    if (!sending) return;
    const t = now();
    while (startAt + FRAME_MS * i <= t) {
      if (t - startAt > config.maxMs) {
        // A bound of its own, should the bench never say stop.
        sending = false;
        return;
      }
      sent.push([i, now()]);
      socket.send(packet(i), peerPort, peer);
      i++;
    }
    timer = setTimeout(tick, Math.max(0, startAt + FRAME_MS * i - now()));
  };
  timer = setTimeout(tick, Math.max(0, startAt - now()));
}

function stop({ drainMs }) {
  sending = false;
  clearTimeout(timer);
  // Packets still in flight (up to the shaper's 50 ms queue) are received before the report.
  setTimeout(() => {
    socket.close();
    answer({ report: { sent, received } });
  }, drainMs);
}

function command(m) {
  if (m.cmd === 'start') start(m);
  else if (m.cmd === 'stop') stop(m);
}

if (isMainThread) {
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => command(JSON.parse(line)));
  lines.on('close', () => process.exit(0));
} else parentPort.on('message', command);

socket.bind({ address: config.bind, port: 0 }, () => answer({ ready: socket.address().port }));
