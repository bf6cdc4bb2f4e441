/**
 * The OVF 1.0 descriptor of the VMware virtual appliance (SPEC.md §1, §5, §6): one
 * streamOptimized disk, one network "VM Network", the hardware profiles as deployment options,
 * and the network settings as ProductSection `ovf:class="cl"` properties, so
 * `ovftool --prop:cl.ip0=…` and the vSphere wizard fill what the first boot reads back from the
 * OVF environment. OVF 1.0 (not 2.0) because that is what ovftool and vSphere take without
 * complaint; it validates against DMTF's DSP8023 1.1.1 envelope schema
 * (test/integration/image/ovf-schema.test.ts).
 *
 * Laid out as VMware's own tools write it (open-vmdk's templates and ova-compose): the
 * VirtualSystem holds OperatingSystemSection, VirtualHardwareSection, then ProductSection and
 * AnnotationSection. The schema allows the VirtualSystem's sections in any order; the rasd
 * elements of an Item and the ProductSection's children are sequences it does check.
 *
 * Minimum host: ESXi 7.0 — hardware version vmx-17 and the guest OS id debian11_64Guest are
 * both ESXi 7.0's (README.md, "Deploying the OVA").
 * Pure: no `node:*` imports.
 */
import type { ClKey } from '@clgw/core/firstboot/ovf-env.js';
import { MAX_DNS, MAX_HOSTNAME } from '@clgw/core/network/settings.js';
import { DEFAULT_PROFILE, PROFILE_NAMES, type ProfileName } from '@clgw/core/system/profiles.js';

export const OVF_NS = 'http://schemas.dmtf.org/ovf/envelope/1';
export const RASD_NS = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData';
export const VSSD_NS = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData';
export const VMW_NS = 'http://www.vmware.com/schema/ovf';
export const STREAM_OPTIMIZED = 'http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized';
/** Both OVF environment transports: VMware guestinfo and a CD-ROM with `ovf-env.xml`. */
export const OVF_TRANSPORT = 'com.vmware.guestInfo iso';

/** The firmware a VMware VM can boot with (`vmw:Config` key `firmware`). */
export const FIRMWARES = ['bios', 'efi'] as const;
export type Firmware = (typeof FIRMWARES)[number];

/**
 * The OVA boots with UEFI: vSphere 7 and later make new VMs UEFI by default, and the disk is
 * hybrid (GRUB's BIOS core in the `bios` partition and its UEFI image at EFI/BOOT/BOOTX64.EFI on
 * the ESP, image/src/build/disk.ts), so an admin may still switch a VM to BIOS and it boots.
 * Secure Boot stays off (`bootOptions.efiSecureBootEnabled`): our GRUB is unsigned.
 */
export const OVA_FIRMWARE: Firmware = 'efi';

/**
 * ESXi's default port group. Naming the OVF network after it lets
 * `ovftool … --powerOn vi://…` deploy to a stock host without a `--net:` mapping; the vSphere
 * wizard still offers every port group for it.
 */
export const NETWORK_NAME = 'VM Network';

/**
 * vCPUs and memory of each profile (SPEC.md §6). The agent picks its profile from what the VM
 * has (system/profiles.ts selectProfile), so each option here is exactly a profile's floor.
 */
export const DEPLOYMENT_OPTIONS: Readonly<
  Record<ProfileName, { label: string; cpus: number; memoryMiB: number; calls: number }>
> = {
  small: { label: 'Small', cpus: 1, memoryMiB: 1024, calls: 25 },
  'small-plus': { label: 'Small Plus', cpus: 2, memoryMiB: 2048, calls: 40 },
  medium: { label: 'Medium', cpus: 4, memoryMiB: 2048, calls: 30 },
  large: { label: 'Large', cpus: 8, memoryMiB: 4096, calls: 125 },
};

/** The longest dotted-quad IPv4 address (`255.255.255.255`). */
const IPV4_MAX = 15;

/**
 * The ProductSection properties, in the order the deployment wizard shows them; keys as the first
 * boot reads them back (`cl.<key>`). `maxLen` goes into `ovf:qualifiers` (`MinLen(0)`: every
 * property may stay blank), so the vSphere wizard refuses what the first boot
 * (firstboot/src/plan.ts, core/src/network/settings.ts) could never accept, and lets through every
 * value it accepts as written without spaces (it also trims spaces around values and commas).
 */
export const PROPERTIES: Readonly<Record<ClKey, { label: string; description: string; maxLen: number }>> = {
  hostname: {
    label: 'Host name',
    description:
      'Host name or fully qualified name of the gateway (letters, digits, hyphens; labels of up to 63 characters). Blank: cloudlink-gateway.',
    // hostnameProblem's limit for the whole name (the kernel's HOST_NAME_MAX).
    maxLen: MAX_HOSTNAME,
  },
  ip0: {
    label: 'IPv4 address',
    description: 'Static IPv4 address of the LAN port. Blank: DHCP (the other network settings are ignored).',
    maxLen: IPV4_MAX,
  },
  netmask0: {
    label: 'Netmask',
    description: 'Prefix length (24) or dotted netmask (255.255.255.0) of the static address.',
    // The dotted form is the longest the first boot parses.
    maxLen: IPV4_MAX,
  },
  gateway0: {
    label: 'Default gateway',
    description: 'IPv4 address of the default gateway. Blank: no default route.',
    maxLen: IPV4_MAX,
  },
  dns0: {
    label: 'DNS servers',
    description: 'IPv4 addresses of up to three DNS servers, separated by commas (10.0.0.2,10.0.0.3).',
    // MAX_DNS addresses and the commas between them.
    maxLen: MAX_DNS * IPV4_MAX + (MAX_DNS - 1),
  },
};

export interface OvfInput {
  /** The virtual system's id and default VM name (`clgw-1.2.0`). */
  name: string;
  /** The gateway software version (ProductSection Version). */
  version: string;
  /** The VMDK member of the OVA and its size in bytes. */
  disk: { href: string; size: number };
  /** Virtual size of the disk in bytes (the raw image's size). */
  capacityBytes: number;
  /** Bytes of the disk that hold data (what a thin-provisioned deployment uses at first). */
  populatedBytes: number;
  firmware: Firmware;
}

/** Text or attribute value made safe for XML (all five predefined entities). */
export function xmlEscape(value: string): string {
  return value.replace(
    /[&<>"']/g,
    (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`,
  );
}

function attrs(a: Record<string, string | number>): string {
  return Object.entries(a)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v))}"`)
    .join('');
}

function el(name: string, text: string | number, a: Record<string, string | number> = {}): string {
  return `<${name}${attrs(a)}>${xmlEscape(String(text))}</${name}>`;
}

/**
 * One hardware Item. The CIM schema is a sequence in alphabetical order, which ovftool checks,
 * so the rasd elements are sorted by name.
 */
function item(rasd: Record<string, string | number>, a: Record<string, string> = {}): string[] {
  const fields = Object.keys(rasd)
    .sort()
    .map((k) => `  ${el(`rasd:${k}`, rasd[k]!)}`);
  return [`<Item${attrs(a)}>`, ...fields, '</Item>'];
}

const indent = (lines: string[], by = 2): string[] => lines.map((l) => `${' '.repeat(by)}${l}`);

/**
 * The VM's settings beyond the hardware items (`vmw:Config`, not required: a host that does not
 * know one still deploys). Only what the appliance needs differently from a new VM's defaults.
 */
function vmwConfig(firmware: Firmware): Record<string, string> {
  return {
    firmware,
    // Our GRUB is not signed (no shim), so UEFI Secure Boot would refuse it; pinned off so a
    // host or a vCenter policy that defaults new VMs to Secure Boot does not leave it unbootable.
    ...(firmware === 'efi' ? { 'bootOptions.efiSecureBootEnabled': 'false' } : {}),
    // The agent picks its performance profile from the vCPUs and memory seen at boot (SPEC.md
    // §6), so hot-added ones would sit unused until a restart; and CPU hot-add turns vNUMA off.
    // Change the deployment option (or the VM's size) with the VM powered off instead.
    cpuHotAddEnabled: 'false',
    memoryHotAddEnabled: 'false',
    // The vSphere power buttons ask the guest (through VMware Tools) to shut down or restart
    // cleanly rather than cutting its power: a hard power-off in the middle of an update is the
    // power cut the agent must recover from by a factory reset.
    'powerOpInfo.powerOffType': 'soft',
    'powerOpInfo.resetType': 'soft',
    // The appliance keeps time by NTP (systemd-timesyncd, SPEC.md §5); the host's clock, stepped
    // in by the tools, would fight it.
    'tools.syncTimeWithHost': 'false',
  };
}

/** vSphere's "Notes" of the VM: what it is and where a technician goes next. */
function annotation(version: string): string {
  return (
    `CloudLink Gateway ${version} (Mitel). Its console shows the gateway's address; the local ` +
    'portal is http://<address>/ or http://cloudlink.local/. The performance profile follows ' +
    'the vCPUs and memory the VM has at boot (deployment options Small to Large).'
  );
}

/** The `.ovf` descriptor. */
export function renderOvf(input: OvfInput): string {
  const hardware: string[][] = [];
  let instance = 1;
  // Each profile's CPUs and memory, each Item used only in its deployment option.
  for (const id of PROFILE_NAMES) {
    const o = DEPLOYMENT_OPTIONS[id];
    hardware.push(
      item(
        {
          AllocationUnits: 'hertz * 10^6',
          Description: 'Number of Virtual CPUs',
          ElementName: `${o.cpus} virtual CPU(s)`,
          InstanceID: instance++,
          ResourceType: 3,
          VirtualQuantity: o.cpus,
        },
        { 'ovf:configuration': id },
      ),
      item(
        {
          AllocationUnits: 'byte * 2^20',
          Description: 'Memory Size',
          ElementName: `${o.memoryMiB}MB of memory`,
          InstanceID: instance++,
          ResourceType: 4,
          VirtualQuantity: o.memoryMiB,
        },
        { 'ovf:configuration': id },
      ),
    );
  }
  // One SATA controller for the disk and the CD-ROM: AHCI needs no extra driver in Debian's
  // kernel, and the CD-ROM is where the `iso` transport puts ovf-env.xml.
  const sata = instance++;
  hardware.push(
    item({
      Address: 0,
      Description: 'SATA Controller',
      ElementName: 'SATA controller 0',
      InstanceID: sata,
      ResourceSubType: 'vmware.sata.ahci',
      ResourceType: 20,
    }),
    item({
      AddressOnParent: 0,
      ElementName: 'Hard disk 1',
      HostResource: 'ovf:/disk/vmdisk1',
      InstanceID: instance++,
      Parent: sata,
      ResourceType: 17,
    }),
    item(
      {
        AddressOnParent: 1,
        AutomaticAllocation: 'false',
        ElementName: 'CD/DVD drive 1',
        InstanceID: instance++,
        Parent: sata,
        ResourceSubType: 'vmware.cdrom.remotepassthrough',
        ResourceType: 15,
      },
      { 'ovf:required': 'false' },
    ),
    item({
      AutomaticAllocation: 'true',
      Connection: NETWORK_NAME,
      Description: `VmxNet3 ethernet adapter on "${NETWORK_NAME}"`,
      ElementName: 'Network adapter 1',
      InstanceID: instance++,
      ResourceSubType: 'VmxNet3',
      ResourceType: 10,
    }),
  );

  const product = [
    `<ProductSection${attrs({ 'ovf:class': 'cl' })}>`,
    `  ${el('Info', 'CloudLink Gateway network settings, applied at first boot')}`,
    `  ${el('Product', 'CloudLink Gateway')}`,
    `  ${el('Vendor', 'Mitel')}`,
    `  ${el('Version', input.version)}`,
    `  ${el('FullVersion', input.version)}`,
    ...Object.entries(PROPERTIES).flatMap(([key, p]) => [
      `  <Property${attrs({
        'ovf:key': key,
        'ovf:qualifiers': `MinLen(0),MaxLen(${p.maxLen})`,
        'ovf:type': 'string',
        'ovf:userConfigurable': 'true',
        'ovf:value': '',
      })}>`,
      `    ${el('Label', p.label)}`,
      `    ${el('Description', p.description)}`,
      '  </Property>',
    ]),
    '</ProductSection>',
  ];

  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<Envelope${attrs({
      xmlns: OVF_NS,
      'xmlns:ovf': OVF_NS,
      'xmlns:rasd': RASD_NS,
      'xmlns:vssd': VSSD_NS,
      'xmlns:vmw': VMW_NS,
      'xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance',
    })}>`,
    '  <References>',
    `    <File${attrs({ 'ovf:href': input.disk.href, 'ovf:id': 'file1', 'ovf:size': input.disk.size })}/>`,
    '  </References>',
    '  <DiskSection>',
    `    ${el('Info', 'Virtual disk information')}`,
    `    <Disk${attrs({
      'ovf:capacity': input.capacityBytes,
      'ovf:capacityAllocationUnits': 'byte',
      'ovf:diskId': 'vmdisk1',
      'ovf:fileRef': 'file1',
      'ovf:format': STREAM_OPTIMIZED,
      'ovf:populatedSize': input.populatedBytes,
    })}/>`,
    '  </DiskSection>',
    '  <NetworkSection>',
    `    ${el('Info', 'The logical networks')}`,
    `    <Network${attrs({ 'ovf:name': NETWORK_NAME })}>`,
    `      ${el('Description', 'The LAN the PBX is on (port 1 of the gateway)')}`,
    '    </Network>',
    '  </NetworkSection>',
    '  <DeploymentOptionSection>',
    `    ${el('Info', 'Hardware profiles')}`,
    ...PROFILE_NAMES.map((id) => ({ id, ...DEPLOYMENT_OPTIONS[id] })).flatMap((o) => [
      `    <Configuration${attrs({
        ...(o.id === DEFAULT_PROFILE ? { 'ovf:default': 'true' } : {}),
        'ovf:id': o.id,
      })}>`,
      `      ${el('Label', `${o.label} (${o.cpus} vCPU, ${o.memoryMiB / 1024} GiB RAM)`)}`,
      `      ${el('Description', `${o.cpus} vCPU and ${o.memoryMiB / 1024} GiB of memory: up to ${o.calls} simultaneous calls`)}`,
      '    </Configuration>',
    ]),
    '  </DeploymentOptionSection>',
    `  <VirtualSystem${attrs({ 'ovf:id': input.name })}>`,
    `    ${el('Info', 'The CloudLink Gateway virtual appliance')}`,
    `    ${el('Name', input.name)}`,
    // CIM operating system 96: Debian 64-bit. VMware's Debian 11 id (ESXi 7.0 and later) fits
    // Debian 12 too; debian12_64Guest would need ESXi 8.
    `    <OperatingSystemSection${attrs({ 'ovf:id': 96, 'vmw:osType': 'debian11_64Guest' })}>`,
    `      ${el('Info', 'The guest operating system')}`,
    `      ${el('Description', 'Debian GNU/Linux 12 (64-bit)')}`,
    '    </OperatingSystemSection>',
    `    <VirtualHardwareSection${attrs({ 'ovf:transport': OVF_TRANSPORT })}>`,
    `      ${el('Info', 'Virtual hardware requirements')}`,
    '      <System>',
    `        ${el('vssd:ElementName', 'Virtual Hardware Family')}`,
    `        ${el('vssd:InstanceID', 0)}`,
    `        ${el('vssd:VirtualSystemIdentifier', input.name)}`,
    // Hardware version 17: ESXi 7.0 and later, as the guest OS id. Newer versions (19: 7.0 U2,
    // 20: 8.0) would shut out 7.0 hosts for devices the appliance does not use.
    `        ${el('vssd:VirtualSystemType', 'vmx-17')}`,
    '      </System>',
    ...indent(hardware.flat(), 6),
    ...indent(
      Object.entries(vmwConfig(input.firmware)).map(
        ([key, value]) =>
          `<vmw:Config${attrs({ 'ovf:required': 'false', 'vmw:key': key, 'vmw:value': value })}/>`,
      ),
      6,
    ),
    '    </VirtualHardwareSection>',
    // After the hardware, as VMware's tools place them.
    ...indent(product, 4),
    '    <AnnotationSection>',
    `      ${el('Info', 'A human-readable annotation')}`,
    `      ${el('Annotation', annotation(input.version))}`,
    '    </AnnotationSection>',
    '  </VirtualSystem>',
    '</Envelope>',
  ];
  return `${lines.join('\n')}\n`;
}
