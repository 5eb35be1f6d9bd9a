// What other modules may use of the tasks module: nothing yet beyond its events, whose contract
// is src/shared/events.ts (the event plumbing carries them too).
export type TasksApi = Record<never, never>;
