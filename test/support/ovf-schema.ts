import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** DMTF's OVF envelope schema and what it imports, unmodified (test/fixtures/ovf-schema/NOTICE). */
export const OVF_SCHEMA_DIR = fileURLToPath(new URL('../fixtures/ovf-schema/', import.meta.url));
export const OVF_ENVELOPE_XSD = path.join(OVF_SCHEMA_DIR, 'dsp8023_1.1.1.xsd');
/** Maps the schemas' remote `schemaLocation` URLs to the local copies. */
export const OVF_SCHEMA_CATALOG = path.join(OVF_SCHEMA_DIR, 'catalog.xml');

export interface XmllintResult {
  /** xmllint's exit status: 0 valid, 3 invalid against the schema, 1 not well-formed… */
  code: number;
  /** stdout and stderr together, as a person reads them. */
  output: string;
}

/**
 * `xmllint --nonet --noout --schema <xsd> <file>` with the fixtures' XML catalog, so nothing is
 * ever fetched: a schema import that the catalog does not map fails instead of going online.
 */
export function xmllintSchema(file: string, xsd = OVF_ENVELOPE_XSD): Promise<XmllintResult> {
  return new Promise((resolve, reject) => {
    execFile(
      'xmllint',
      ['--nonet', '--noout', '--schema', xsd, file],
      { env: { ...process.env, XML_CATALOG_FILES: OVF_SCHEMA_CATALOG }, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(error);
          return;
        }
        resolve({ code: error ? (error.code as number) : 0, output: `${stdout}${stderr}` });
      },
    );
  });
}
