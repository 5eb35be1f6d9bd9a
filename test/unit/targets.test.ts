// SSRF checks on webhook targets (src/modules/notifications/targets.ts), with IP literals only: no
// DNS lookup happens (resolveTarget resolves only host names, and every URL here names an address).
// test/integration/webhooks.test.ts checks one address per common range and the HTTP refusal; this
// file checks range edges, the other special-purpose ranges, other spellings of an address, and
// resolveTarget's answers.
import { describe, expect, it } from 'vitest';
import { isPrivateAddress, resolveTarget, TargetRefused } from '../../src/modules/notifications/targets.js';

const expectPrivate = (addresses: string[]) => {
  for (const a of addresses) expect(isPrivateAddress(a), a).toBe(true);
};
const expectPublic = (addresses: string[]) => {
  for (const a of addresses) expect(isPrivateAddress(a), a).toBe(false);
};

describe('isPrivateAddress: IPv4', () => {
  it('loopback: all of 127/8, not just 127.0.0.1', () => {
    expectPrivate(['127.0.0.0', '127.0.0.2', '127.1.2.3', '127.255.255.255']);
  });

  it('RFC 1918, at both ends of each range', () => {
    expectPrivate(['10.0.0.0', '10.255.255.255', '172.16.0.0', '172.31.255.255', '192.168.0.0', '192.168.255.255']);
    expectPublic(['9.255.255.255', '11.0.0.0', '172.15.255.255', '172.32.0.0', '192.167.255.255', '192.169.0.0']);
  });

  it('link-local 169.254/16 (cloud metadata)', () => {
    expectPrivate(['169.254.0.0', '169.254.0.1', '169.254.255.255', '169.254.170.2']);
    expectPublic(['169.253.255.255', '169.255.0.0']);
  });

  it('carrier-grade NAT 100.64/10, and only that', () => {
    expectPrivate(['100.64.0.0', '100.100.100.100', '100.127.255.255']);
    expectPublic(['100.63.255.255', '100.128.0.0']);
  });

  it('"this" network 0/8 (0.0.0.0 reaches the local host)', () => {
    expectPrivate(['0.0.0.1', '0.255.255.255']);
  });

  it('multicast, reserved and broadcast: 224/4 and 240/4', () => {
    expectPrivate(['224.0.0.0', '239.255.255.250', '240.0.0.1', '255.255.255.255']);
    expectPublic(['223.255.255.255']);
  });

  it('special-purpose and documentation ranges', () => {
    expectPrivate(['192.0.0.8', '192.0.2.1', '198.18.0.1', '198.19.255.255', '198.51.100.7', '203.0.113.9']);
    expectPublic(['198.17.255.255', '198.20.0.0']);
  });

  it('ordinary public addresses are not private', () => {
    expectPublic(['1.1.1.1', '1.2.3.4', '13.107.42.14', '151.101.1.69', '185.199.108.153', '203.0.114.1', '223.1.1.1']);
  });
});

describe('isPrivateAddress: IPv6', () => {
  it('loopback and unspecified, in any spelling', () => {
    expectPrivate(['0:0:0:0:0:0:0:1', '0000:0000:0000:0000:0000:0000:0000:0001', '0:0:0:0:0:0:0:0', '::0.0.0.1']);
  });

  it('unique local fc00::/7 (both halves) and link-local fe80::/10 (to its end)', () => {
    expectPrivate(['fc00::1', 'fcff:ffff::1', 'fd12:3456:789a::1', 'FD00::1', 'fe80::1:2:3:4', 'febf:ffff::1']);
    expectPublic(['fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']);
  });

  it('multicast ff00::/8, documentation 2001:db8::/32, discard 100::/64, NAT64 64:ff9b::/96', () => {
    expectPrivate(['ff02::1', 'ff05::2', 'ff0e::101', '2001:db8::1', '2001:db8:ffff::1', '100::1', '64:ff9b::7f00:1', '64:ff9b::a9fe:a9fe']);
  });

  it('IPv4-mapped addresses are judged by the IPv4 address they carry, in dotted or hex spelling', () => {
    expectPrivate(['::ffff:127.0.0.1', '::FFFF:127.0.0.1', '::ffff:169.254.169.254', '::ffff:192.168.1.1', '::ffff:100.64.0.1', '::ffff:0.0.0.0']);
    expectPrivate(['::ffff:7f00:1', '::ffff:a9fe:a9fe', '::ffff:c0a8:101', '0:0:0:0:0:ffff:127.0.0.1', '0000:0000:0000:0000:0000:ffff:7f00:0001']);
    expectPublic(['::ffff:1.1.1.1', '::ffff:101:101', '::FFFF:93.184.216.34']);
  });

  it('ordinary global unicast addresses are not private', () => {
    expectPublic(['2001:4860:4860::8888', '2a00:1450:4001:82b::200e', '2606:4700::6810:84e5', '2620:fe::fe', '2a03:2880:f12f:83:face:b00c:0:25de']);
  });

  it('IPv4-compatible ::a.b.c.d (deprecated ::/96), in dotted or hex spelling, whatever IPv4 address it carries', () => {
    expectPrivate(['::127.0.0.1', '::7f00:1', '::10.0.0.1', '::a00:1', '::8.8.8.8', '0:0:0:0:0:0:808:808']);
  });

  it('6to4 2002::/16 is judged by the IPv4 address it embeds', () => {
    expectPrivate(['2002:7f00:1::', '2002:7f00:0001::1', '2002:c0a8:101::', '2002:c0a8:0101:1::1', '2002:a9fe:a9fe::', '2002:a00:1::', '2002::', '2002:c058:6301::']);
    expectPublic(['2002:808:808::', '2002:0101:0101:1::1']);
  });

  it('192.88.99.0/24 (deprecated 6to4 relay anycast, RFC 7526)', () => {
    expectPrivate(['192.88.99.0', '192.88.99.1', '192.88.99.255']);
    expectPublic(['192.88.98.255', '192.88.100.0']);
  });

  it('local-use NAT64 64:ff9b:1::/48 (RFC 8215), whatever IPv4 address it carries', () => {
    expectPrivate(['64:ff9b:1::a00:1', '64:ff9b:1::808:808', '64:ff9b:1:ffff:ffff:ffff:ffff:ffff']);
    expectPublic(['64:ff9b:2::1']);
  });

  it('IPv4-translated ::ffff:0:a.b.c.d (RFC 2765), in dotted or hex spelling', () => {
    expectPrivate(['::ffff:0:127.0.0.1', '::ffff:0:7f00:1', '::ffff:0:8.8.8.8', '0:0:0:0:ffff:0:a00:1']);
  });

  it('Teredo 2001::/32 and the rest of the 2001::/23 special-purpose space', () => {
    expectPrivate(['2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:1::1', '2001:2::1', '2001:1ff:ffff::1']);
    expectPublic(['2001:200::1', '2001:4860:4860::8888']);
  });

  it('deprecated site-local fec0::/10', () => {
    expectPrivate(['fec0::1', 'fec0:0:0:ffff::1', 'feff:ffff::1']);
  });
});

describe('isPrivateAddress: not an address', () => {
  it('anything that is not an IP literal counts as private (fails closed)', () => {
    expectPrivate(['', 'localhost', 'example.com', '127.1', '1.2.3', '1.2.3.4.5', '256.1.1.1', '[::1]', '::1::2', ' 8.8.8.8', '8.8.8.8/32']);
  });
});

describe('resolveTarget with IP-literal URLs (no DNS)', () => {
  async function refusal(url: string, allowPrivate = false): Promise<TargetRefused> {
    try {
      await resolveTarget(url, allowPrivate);
    } catch (err) {
      expect(err, url).toBeInstanceOf(TargetRefused);
      return err as TargetRefused;
    }
    throw new Error(`expected ${url} to be refused`);
  }

  it('returns the address to connect to, with its family', async () => {
    await expect(resolveTarget('https://93.184.216.34:8443/hooks?x=1', false)).resolves.toEqual({ address: '93.184.216.34', family: 4 });
    await expect(resolveTarget('http://[2606:4700:4700::1111]/x', false)).resolves.toEqual({ address: '2606:4700:4700::1111', family: 6 });
  });

  it('refuses a private address, naming it', async () => {
    const err = await refusal('http://10.1.2.3:8080/x');
    expect(err.message).toBe('resolves to a private, loopback or link-local address (10.1.2.3)');
    expect((await refusal('http://[fd00::1]/x')).message).toContain('(fd00::1)');
  });

  it('sees through other spellings of a loopback address that the URL parser normalises', async () => {
    // decimal, hex, octal and short IPv4 forms become 127.0.0.1; a mapped IPv6 becomes ::ffff:7f00:1
    for (const url of ['http://2130706433/', 'http://0x7f000001/', 'http://0x7f.1/', 'http://017700000001/', 'http://127.1/', 'http://[::ffff:127.0.0.1]/']) {
      expect((await refusal(url)).message, url).toMatch(/^resolves to a private/);
    }
  });

  it('with private targets allowed: returns the private address', async () => {
    await expect(resolveTarget('http://127.0.0.1:9000/x', true)).resolves.toEqual({ address: '127.0.0.1', family: 4 });
    await expect(resolveTarget('http://[::1]:9000/x', true)).resolves.toEqual({ address: '::1', family: 6 });
  });

  it('refuses what is not a URL, even with private targets allowed', async () => {
    for (const url of ['not a url', '', '//10.0.0.1/x', 'http://']) {
      expect((await refusal(url, true)).message, url).toBe('is not a URL');
    }
  });
});
