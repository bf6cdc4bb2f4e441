/**
 * One appliance in QEMU for the end-to-end run: TCG (no KVM here), BIOS or UEFI (OVMF), a qcow2
 * disk (an overlay over the built raw image, or the OVA's disk converted), the OVF environment on
 * a CD-ROM, QEMU's user network with the
 * portal forwarded to the host, the serial console appended to a log, and a 9p share with the lab
 * image (power-cut points, tty1's text). `powerCut()` is SIGKILL: the guest's unwritten caches
 * are lost as in a power cut; what QEMU already handed to the host file stays.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, promises as fs, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Debian's OVMF (package ovmf): the firmware without Secure Boot, and its variable store. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE.fd';
export const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS.fd';

export interface MachineOptions {
  disk: string;
  /**
   * `bios` (SeaBIOS, QEMU's default) or `efi`: OVMF without Secure Boot as two pflash drives, the
   * code read-only and a writable copy of its variable store (made at the first start, kept
   * across the machine's reboots and power cycles like a real NVRAM). Default `bios`.
   */
  firmware?: 'bios' | 'efi';
  iso: string;
  share: string;
  serialLog: string;
  /** Host port forwarded to the guest's portal (port 80). */
  portalPort: number;
  /** The address the guest will have (the OVF environment's static address). */
  guestIp: string;
  memoryMiB?: number;
  cpus?: number;
}

export class Machine {
  private child: ChildProcess | undefined;
  private log: WriteStream | undefined;
  private exited: Promise<number | null> | undefined;
  constructor(readonly o: MachineOptions) {}

  private get qmpSocket(): string {
    return path.join(path.dirname(this.o.serialLog), 'qmp.sock');
  }

  private get efiVars(): string {
    return path.join(path.dirname(this.o.serialLog), 'OVMF_VARS.fd');
  }

  /**
   * The firmware's, the disk's and the CD-ROM's arguments. UEFI boots the disk by its boot index,
   * and its CD-ROM is a SATA drive (AHCI): on the IDE controller, where BIOS has it, Debian 12's
   * kernel finds no drive after OVMF (QEMU 7.2, OVMF 2022.11: ata_piix probes ata1 and reports
   * nothing; the same disc on AHCI is /dev/sr0).
   */
  private async bootArgs(): Promise<string[]> {
    if ((this.o.firmware ?? 'bios') === 'bios') {
      return [
        '-drive',
        `file=${this.o.disk},if=virtio,format=qcow2,cache=writeback`,
        '-drive',
        `file=${this.o.iso},media=cdrom,readonly=on`,
      ];
    }
    if (
      !(await fs.stat(this.efiVars).then(
        () => true,
        () => false,
      ))
    )
      await fs.copyFile(OVMF_VARS, this.efiVars);
    return [
      '-drive',
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      '-drive',
      `if=pflash,format=raw,unit=1,file=${this.efiVars}`,
      '-drive',
      `file=${this.o.disk},if=none,id=disk,format=qcow2,cache=writeback`,
      // Without a boot index OVMF may try the CD-ROM (no boot image) and the NIC's PXE first.
      '-device',
      'virtio-blk-pci,drive=disk,bootindex=0',
      '-drive',
      `file=${this.o.iso},if=none,id=cd,media=cdrom,readonly=on`,
      '-device',
      'ahci,id=ahci',
      '-device',
      'ide-cd,bus=ahci.0,drive=cd',
    ];
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) throw new Error('QEMU is already running');
    await fs.mkdir(this.o.share, { recursive: true });
    this.log = createWriteStream(this.o.serialLog, { flags: 'a' });
    const net = [
      'user,id=lan,net=10.0.2.0/24',
      `hostfwd=tcp:127.0.0.1:${this.o.portalPort}-${this.o.guestIp}:80`,
    ].join(',');
    const args = [
      '-accel',
      'tcg,thread=multi',
      '-cpu',
      'max',
      '-smp',
      String(this.o.cpus ?? 2),
      '-m',
      String(this.o.memoryMiB ?? 1536),
      ...(await this.bootArgs()),
      '-netdev',
      net,
      '-device',
      'virtio-net-pci,netdev=lan',
      '-virtfs',
      `local,path=${this.o.share},mount_tag=clgw-e2e,security_model=none,id=e2e`,
      '-display',
      'none',
      '-vga',
      'std',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-qmp',
      `unix:${this.qmpSocket},server=on,wait=off`,
      '-no-user-config',
      '-nodefaults',
    ];
    const child = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.pipe(this.log, { end: false });
    child.stderr!.on('data', (d: Buffer) => this.log?.write(`[qemu stderr] ${d}`));
    this.exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  }

  /**
   * The power button (ACPI): the guest shuts down cleanly and QEMU exits; the power is cut if it
   * has not within `timeoutMs`.
   */
  async powerButton(timeoutMs = 5 * 60_000): Promise<void> {
    if (!this.child) return;
    await new Promise<void>((resolve, reject) => {
      const sock = net.connect(this.qmpSocket);
      sock.on('connect', () => {
        sock.write('{"execute":"qmp_capabilities"}\n{"execute":"system_powerdown"}\n');
        setTimeout(() => {
          sock.end();
          resolve();
        }, 500);
      });
      sock.on('error', reject);
    });
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, timeoutMs))]);
    // Cuts the power if the guest is still up; otherwise only closes the serial log.
    await this.powerCut();
  }

  /** The reset line (QMP `system_reset`): the machine restarts at once, its disks as they are. */
  async reset(): Promise<void> {
    if (!this.child) return;
    await new Promise<void>((resolve, reject) => {
      const sock = net.connect(this.qmpSocket);
      sock.on('connect', () => {
        sock.write('{"execute":"qmp_capabilities"}\n{"execute":"system_reset"}\n');
        setTimeout(() => {
          sock.end();
          resolve();
        }, 500);
      });
      sock.on('error', reject);
    });
  }

  /** The power goes off: no shutdown, no flush of the guest's caches. */
  async powerCut(): Promise<void> {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = undefined;
    await new Promise<void>((r) => (this.log ? this.log.end(r) : r()));
    this.log = undefined;
  }

  async serial(): Promise<string> {
    return fs.readFile(this.o.serialLog, 'utf8').catch(() => '');
  }

  /** The lab image's memory samples (test/qemu/memory.ts), appended across boots; '' before any. */
  async memoryLog(): Promise<string> {
    return fs.readFile(path.join(this.o.share, 'memory.log'), 'utf8').catch(() => '');
  }

  /** tty1's text (the lab image copies /dev/vcs1 to the share every second): 25 lines of 80. */
  async tty1(): Promise<string | undefined> {
    const raw = await fs.readFile(path.join(this.o.share, 'tty1.txt'), 'latin1').catch(() => undefined);
    if (raw === undefined) return undefined;
    const lines: string[] = [];
    for (let i = 0; i < raw.length; i += 80) lines.push(raw.slice(i, i + 80).trimEnd());
    return lines.join('\n');
  }
}

/** A kernel's console line (`[   12.345678] …`); the firmware's and GRUB's have no timestamp. */
const KERNEL_LINE = /^\[\s*\d+\.\d+\]/m;
const RESTART = 'reboot: machine restart';

/**
 * Whether a guest whose serial output is `serial` is between a restart (or its power-on) and its
 * kernel's first line — in the firmware or the boot loader, where none of our software runs.
 */
export function beforeKernel(serial: string): boolean {
  const at = serial.lastIndexOf(RESTART);
  return !KERNEL_LINE.test(at < 0 ? serial : serial.slice(at + RESTART.length));
}

/** The last `n` lines of a serial log, terminal escapes and carriage returns removed, each cut to 200 characters. */
export function serialTail(serial: string, n: number): string[] {
  return serial
    .replace(/\x1b\[[0-9;=?]*[A-Za-z]/g, '')
    .replace(/\r/g, '')
    .trimEnd()
    .split('\n')
    .slice(-n)
    .map((l) => (l.length > 200 ? `${l.slice(0, 200)}…` : l));
}
