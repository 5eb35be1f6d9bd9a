// Response schemas shared by routes: problem details for each error status a route can return.
import { Problem } from './problem.js';

export function problems(...statuses: number[]): Record<number, typeof Problem> {
  return Object.fromEntries(statuses.map((s) => [s, Problem]));
}
