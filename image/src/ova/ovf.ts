/**
 * The OVF 1.0 descriptor of the VMware virtual appliance (SPEC.md §1, §5, §6): one
 * streamOptimized disk, one network "LAN", the hardware profiles as deployment options, and the
 * network settings as ProductSection `ovf:class="cl"` properties, so `ovftool --prop:cl.ip0=…`
 * and the vSphere wizard fill what the first boot reads back from the OVF environment.
 * OVF 1.0 (not 2.0) because that is what ovftool and vSphere take without complaint.
 * Pure: no `node:*` imports.
 */
import type { ClKey } from '@clgw/agent/firstboot/ovf-env.js';
import { DEFAULT_PROFILE, PROFILE_NAMES, type ProfileName } from '@clgw/agent/system/profiles.js';

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

/**
 * The ProductSection properties, in the order the deployment wizard shows them; keys as the first
 * boot reads them back (`cl.<key>`).
 */
export const PROPERTIES: Readonly<Record<ClKey, { label: string; description: string }>> = {
  hostname: { label: 'Host name', description: 'Host name of the gateway. Blank: cloudlink-gateway.' },
  ip0: {
    label: 'IPv4 address',
    description: 'Static IPv4 address of the LAN port. Blank: DHCP (the other network settings are ignored).',
  },
  netmask0: {
    label: 'Netmask',
    description: 'Prefix length (24) or dotted netmask (255.255.255.0) of the static address.',
  },
  gateway0: { label: 'Default gateway', description: 'IPv4 address of the default gateway.' },
  dns0: {
    label: 'DNS servers',
    description: 'IPv4 addresses of up to three DNS servers, separated by commas.',
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
      Connection: 'LAN',
      Description: 'VmxNet3 ethernet adapter on "LAN"',
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
      `  <Property${attrs({ 'ovf:key': key, 'ovf:type': 'string', 'ovf:userConfigurable': 'true', 'ovf:value': '' })}>`,
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
    `    <Network${attrs({ 'ovf:name': 'LAN' })}>`,
    `      ${el('Description', 'The LAN the PBX is on (port 1)')}`,
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
    ...indent(product, 4),
    `    <VirtualHardwareSection${attrs({ 'ovf:transport': OVF_TRANSPORT })}>`,
    `      ${el('Info', 'Virtual hardware requirements')}`,
    '      <System>',
    `        ${el('vssd:ElementName', 'Virtual Hardware Family')}`,
    `        ${el('vssd:InstanceID', 0)}`,
    `        ${el('vssd:VirtualSystemIdentifier', input.name)}`,
    // Hardware version 17: ESXi 7.0 and later, as the guest OS id.
    `        ${el('vssd:VirtualSystemType', 'vmx-17')}`,
    '      </System>',
    ...indent(hardware.flat(), 6),
    `      <vmw:Config${attrs({ 'ovf:required': 'false', 'vmw:key': 'firmware', 'vmw:value': input.firmware })}/>`,
    '    </VirtualHardwareSection>',
    '  </VirtualSystem>',
    '</Envelope>',
  ];
  return `${lines.join('\n')}\n`;
}
