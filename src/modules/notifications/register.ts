// The notifications module's registration with the event side of a process (serve and worker):
// subscribes the consumer to every task event and runs the delivery worker until shutdown.
import type { EventBus } from '../events/bus.js';
import type { ConsumerContext } from '../events/consumers.js';
import { createNotificationsConsumer, startDeliveryWorker } from './index.js';

export function registerNotifications(bus: EventBus, ctx: ConsumerContext): () => Promise<void> {
  const consumer = createNotificationsConsumer(ctx);
  bus.subscribe(consumer.name, consumer.handle);
  const worker = startDeliveryWorker({ database: ctx.database, config: ctx.config, log: ctx.log });
  return () => worker.stop();
}
