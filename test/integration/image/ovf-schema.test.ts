/**
 * The OVA's descriptor against DMTF's OVF envelope schema (DSP8023 1.1.1, with the CIM schemas it
 * imports), checked by xmllint offline: what renderOvf writes for every firmware validates, the
 * check itself fails — naming the element — on a descriptor that breaks the schema, and the
 * schema copies are the published files, unmodified.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIRMWARES, type OvfInput, renderOvf } from '../../../image/src/ova/ovf.js';
import { tempDir } from '../../support/appliance.js';
import { OVF_SCHEMA_DIR, xmllintSchema } from '../../support/ovf-schema.js';

const RASD = 'http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData';
const input = (firmware: OvfInput['firmware']): OvfInput => ({
  name: 'clgw-1.2.3',
  version: '1.2.3',
  disk: { href: 'clgw-1.2.3-disk1.vmdk', size: 123_456_789 },
  capacityBytes: 8 * 1024 ** 3,
  populatedBytes: 987_654_321,
  firmware,
});

let dir: string;
beforeAll(async () => {
  dir = await tempDir('ovf-schema');
});
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

/** Writes `text` as `<name>.ovf` in the test's directory and validates it. */
async function validate(name: string, text: string) {
  const file = path.join(dir, `${name}.ovf`);
  await fs.writeFile(file, text);
  return { file, ...(await xmllintSchema(file)) };
}

/** Replaces exactly one occurrence of `from`, so a broken descriptor is broken where the test says. */
function replaceOnce(text: string, from: string, to: string): string {
  expect(text.split(from), from).toHaveLength(2);
  return text.replace(from, to);
}

describe('the OVF descriptor against DSP8023 1.1.1 (xmllint --nonet --schema)', () => {
  it.each(FIRMWARES)('renderOvf validates with firmware %s, offline', async (firmware) => {
    const { file, code, output } = await validate(`valid-${firmware}`, renderOvf(input(firmware)));
    expect(output).toContain(`${file} validates`);
    expect(code).toBe(0);
    // Every import resolved to a local copy: nothing was even attempted over the network.
    expect(output).not.toMatch(/network entity|failed to load|Failed to locate/);
  });

  it('the catalog maps the CIM schemas’ remote import of common.xsd to the local copy', async () => {
    // CIM_ResourceAllocationSettingData.xsd on its own imports common.xsd by its http:// URL
    // (inside the envelope schema, libxml2 skips that import as the namespace is already there).
    const file = path.join(dir, 'rasd.xml');
    await fs.writeFile(file, `<rasd:ResourceType xmlns:rasd="${RASD}">10</rasd:ResourceType>\n`);
    const { code, output } = await xmllintSchema(
      file,
      path.join(OVF_SCHEMA_DIR, 'CIM_ResourceAllocationSettingData.xsd'),
    );
    expect(output).not.toMatch(/network entity|failed to load|Failed to locate/);
    expect(output).toContain(`${file} validates`);
    expect(code).toBe(0);
  });

  it('fails a descriptor with a rasd element out of the schema’s order, naming it', async () => {
    const good = renderOvf(input('efi'));
    // The NIC's ElementName moved after its InstanceID (the CIM sequence is alphabetical).
    const broken = replaceOnce(
      good,
      '<rasd:ElementName>Network adapter 1</rasd:ElementName>\n        <rasd:InstanceID>12</rasd:InstanceID>',
      '<rasd:InstanceID>12</rasd:InstanceID>\n        <rasd:ElementName>Network adapter 1</rasd:ElementName>',
    );
    const { file, code, output } = await validate('rasd-order', broken);
    expect(code).toBe(3);
    // xmllint meets InstanceID where the sequence still wants ElementName, and says both.
    expect(output).toContain(
      `{${RASD}}InstanceID': This element is not expected. Expected is ( {${RASD}}ElementName )`,
    );
    expect(output).toContain(`${file} fails to validate`);
  });

  it('fails an unknown element in the ovf namespace, naming it', async () => {
    const broken = replaceOnce(
      renderOvf(input('bios')),
      '    </VirtualHardwareSection>',
      '      <Firmware>efi</Firmware>\n    </VirtualHardwareSection>',
    );
    const { file, code, output } = await validate('unknown-element', broken);
    expect(code).toBe(3);
    expect(output).toContain(
      "Element '{http://schemas.dmtf.org/ovf/envelope/1}Firmware': This element is not expected",
    );
    expect(output).toContain(`${file} fails to validate`);
  });

  it('fails a ProductSection whose Vendor comes before its Product, naming it', async () => {
    const broken = replaceOnce(
      renderOvf(input('efi')),
      '<Product>CloudLink Gateway</Product>\n      <Vendor>Mitel</Vendor>',
      '<Vendor>Mitel</Vendor>\n      <Product>CloudLink Gateway</Product>',
    );
    const { code, output } = await validate('product-order', broken);
    expect(code).toBe(3);
    expect(output).toContain(
      "Element '{http://schemas.dmtf.org/ovf/envelope/1}Product': This element is not expected",
    );
  });

  it('the schema files are the published ones, byte for byte (SHA256SUMS)', async () => {
    const sums = (await fs.readFile(path.join(OVF_SCHEMA_DIR, 'SHA256SUMS'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => {
        const [hex, name] = line.split(/ {2}/);
        return { hex, name: name! };
      });
    const xsds = (await fs.readdir(OVF_SCHEMA_DIR)).filter((f) => f.endsWith('.xsd')).sort();
    expect(sums.map((s) => s.name).sort()).toEqual(xsds);
    expect(xsds).toContain('dsp8023_1.1.1.xsd');
    for (const { hex, name } of sums) {
      const bytes = await fs.readFile(path.join(OVF_SCHEMA_DIR, name));
      expect(createHash('sha256').update(bytes).digest('hex'), name).toBe(hex);
    }
  });
});
