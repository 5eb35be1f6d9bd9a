// Connecting to one of several RabbitMQ nodes (AMQP_URL with the nodes of a cluster): the nodes
// are tried in turn from a starting one, and the first that accepts the connection is used. The
// bus starts at the node after the one it lost, so that a dead node is not tried first again
// (round-robin); the operator tools start at the first.
import { connect, type ChannelModel, type Options } from 'amqplib';
import { errorMessage } from '../shared/errors.js';

export interface NodeConnection {
  conn: ChannelModel;
  /** The index in `urls` of the node that answered. */
  index: number;
}

/** host:port of a broker URL, for logs (never its credentials). */
export function nodeOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'amqps:' ? '5671' : '5672')}`;
  } catch {
    return 'unparsable URL';
  }
}

/**
 * Connects to the first node, counting from `start`, that accepts; throws, naming every node and
 * its error, when none does.
 */
export async function connectToAny(urls: readonly string[], start: number, options: Options.Connect | Record<string, unknown> = {}): Promise<NodeConnection> {
  if (urls.length === 0) throw new Error('no broker URL');
  const failures: string[] = [];
  let last: unknown;
  for (let i = 0; i < urls.length; i++) {
    const index = (start + i) % urls.length;
    try {
      return { conn: await connect(urls[index]!, options), index };
    } catch (err) {
      last = err;
      failures.push(`${nodeOf(urls[index]!)}: ${errorMessage(err)}`);
    }
  }
  // One broker: its own error, as before there were several.
  if (urls.length === 1) throw last;
  throw new Error(`no broker node answered (${failures.join('; ')})`);
}
