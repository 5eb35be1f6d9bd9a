// What other modules may use of the notifications module: nothing; it learns of tasks from events.
export type NotificationsApi = Record<never, never>;
