import { bypassesProxy, parseContentRange, parseProxyUrl, proxyFromEnv } from '@clgw/core/platform/http.js';
import { describe, expect, it } from 'vitest';

describe('bypassesProxy (NO_PROXY)', () => {
  const cases: [string, number, string | undefined, boolean][] = [
    ['download.mitel.io', 443, undefined, false],
    ['download.mitel.io', 443, '', false],
    ['download.mitel.io', 443, '*', true],
    ['download.mitel.io', 443, 'download.mitel.io', true],
    ['DOWNLOAD.Mitel.IO', 443, 'download.mitel.io', true],
    ['download.mitel.io', 443, 'mitel.io', true],
    ['download.mitel.io', 443, '.mitel.io', true],
    ['mitel.io', 443, '.mitel.io', false],
    ['mitel.io', 443, 'mitel.io', true],
    ['download.mitel.io', 443, '*.mitel.io', true],
    ['notmitel.io', 443, 'mitel.io', false],
    ['download.mitel.io', 443, 'example.com, mitel.io', true],
    ['download.mitel.io', 443, 'example.com mitel.io', true],
    ['download.mitel.io', 443, 'download.mitel.io:443', true],
    ['download.mitel.io', 8443, 'download.mitel.io:443', false],
    ['10.1.2.3', 443, '10.1.2.3', true],
    ['10.1.2.3', 443, '10.1.2.4', false],
    ['10.1.2.3', 443, '10.0.0.0/8', true],
    ['11.1.2.3', 443, '10.0.0.0/8', false],
    ['192.168.7.9', 443, '192.168.7.0/24', true],
    ['192.168.8.9', 443, '192.168.7.0/24', false],
    ['localhost', 443, undefined, true],
    ['127.0.0.1', 443, undefined, true],
    ['[::1]', 443, undefined, true],
    ['fd00::1', 443, '[fd00::1]:443', true],
  ];
  it.each(cases)('%s:%i with NO_PROXY=%s → direct %s', (host, port, noProxy, direct) => {
    expect(bypassesProxy(host, port, noProxy)).toBe(direct);
  });
});

describe('proxyFromEnv', () => {
  it('prefers HTTPS_PROXY over https_proxy and reads NO_PROXY', () => {
    expect(
      proxyFromEnv({ HTTPS_PROXY: 'http://a:3128', https_proxy: 'http://b:3128', no_proxy: '.lan' }),
    ).toEqual({ url: 'http://a:3128', noProxy: '.lan' });
    expect(proxyFromEnv({ https_proxy: 'http://b:3128' })).toEqual({ url: 'http://b:3128' });
    expect(proxyFromEnv({ HTTP_PROXY: 'http://c:3128' })).toBeUndefined();
  });
});

describe('parseProxyUrl', () => {
  it('accepts http(s) URLs and bare host:port', () => {
    expect(parseProxyUrl('http://user:pw@proxy.lan:3128').host).toBe('proxy.lan:3128');
    expect(parseProxyUrl('proxy.lan:3128').protocol).toBe('http:');
  });
  it('refuses anything else with PROXY_INVALID naming the value', () => {
    for (const bad of ['socks5://proxy.lan:1080', 'http://', '::::']) {
      expect(() => parseProxyUrl(bad)).toThrow(expect.objectContaining({ code: 'PROXY_INVALID' }));
      expect(() => parseProxyUrl(bad)).toThrow(bad);
    }
  });
});

describe('parseContentRange', () => {
  it('reads start, end and total', () => {
    expect(parseContentRange('bytes 100-199/200')).toEqual({ start: 100, end: 199, total: 200 });
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9 });
  });
  it('refuses malformed headers', () => {
    for (const bad of [undefined, '', 'bytes */200', 'bytes 10-5/200', 'items 0-1/2', 'bytes 1-2/3,4']) {
      expect(parseContentRange(bad)).toBeUndefined();
    }
  });
});
