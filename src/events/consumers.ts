// How consumers join a process's event side. The entry points (serve, worker) pass the
// registrations of the modules they run; this plumbing never names a consumer. A registration
// subscribes its handlers to the bus before it starts, and returns what stops whatever it
// started (timers, workers), called on shutdown.
import type { EventBus } from './bus.js';

export type RegisterConsumers = (bus: EventBus) => void | undefined | (() => Promise<void>) | Promise<void | (() => Promise<void>)>;
