// What the chaos run's clients did and learned, as plain data: the checker (checker.ts) reads only
// this and the final state, so a synthetic history (test/unit/chaos-checker.test.ts) is checked
// exactly as a real one.

/** How one HTTP try ended, as the client saw it. */
export type TryOutcome =
  | { kind: 'ok'; status: number }
  /** An answer that was not 2xx (the edge's 502 included). */
  | { kind: 'failed'; status: number }
  /** No answer: the connection was refused or cut. */
  | { kind: 'error'; error: string }
  /** No answer within the client's timeout: a hung request. */
  | { kind: 'timeout' };

/** One create, with every try of it (the same Idempotency-Key on each). */
export interface CreateRecord {
  /** The client-chosen marker, the task's title: how a stored row is matched to its attempt. */
  marker: string;
  key: string;
  userId: string;
  tries: TryOutcome[];
  /** The id of the task, once a try was acknowledged (2xx). */
  ackedId?: string;
}

/** One update of a task's description, with every try of it (one Idempotency-Key). */
export interface UpdateRecord {
  taskId: string;
  /** Order of the updates of this task (one client owns a task's updates, one at a time). */
  seq: number;
  key: string;
  /** The description this update writes: unique per update. */
  value: string;
  tries: TryOutcome[];
  acked: boolean;
}

/** A row as the database holds it at the end. */
export interface StoredTask {
  id: string;
  userId: string;
  title: string;
  description: string | null;
}

export interface ClientHistory {
  creates: CreateRecord[];
  updates: UpdateRecord[];
  /** Reads (GET by id, lists) that got no answer within the client's timeout. */
  hungReads: number;
}

export interface FinalState {
  /** Every task of the run's users. */
  rows: StoredTask[];
  /** Ids of the tasks whose task.created the notifications consumer recorded. */
  createdDelivered: Set<string>;
}
