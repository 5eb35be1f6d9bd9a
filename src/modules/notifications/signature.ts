// Webhook signatures, the GitHub/Stripe scheme: HMAC-SHA256 over `${timestamp}.${body}` with the
// webhook's secret, sent as `Webhook-Signature: v1=<hex>` next to `Webhook-Timestamp`.
import { createHmac, timingSafeEqual } from 'node:crypto';

export function sign(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What a receiver does: recompute and compare in constant time (and reject old timestamps). */
export function verify(secret: string, timestamp: number, body: string, header: string): boolean {
  const expected = Buffer.from(sign(secret, timestamp, body));
  return header.split(/\s*,\s*/).some((candidate) => {
    const got = Buffer.from(candidate);
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}
