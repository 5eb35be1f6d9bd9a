// Vary lists every request header a response depends on. Several hooks add to it (CORS: Origin;
// the response cache: Authorization), so each adds its names instead of replacing the header.
import type { FastifyReply } from 'fastify';

export function addVary(reply: FastifyReply, ...names: string[]): void {
  const current = reply.getHeader('vary');
  const list = current === undefined ? [] : String(current).split(',').map((s) => s.trim()).filter(Boolean);
  for (const name of names) if (!list.some((v) => v.toLowerCase() === name.toLowerCase())) list.push(name);
  void reply.header('vary', list.join(', '));
}
