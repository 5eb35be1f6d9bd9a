// Response schemas shared by routes: problem details for each error status a route can return.
/** A problem+json answer with its own description (problems() below gives each status's usual one). */
export const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: 'Problem#' } } },
});

const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: `errors` names each bad field',
  401: 'Missing, invalid or expired credentials',
  403: 'Authenticated but not allowed',
  404: 'Not found (or not yours)',
  409: 'Conflicts with the current state',
  412: 'If-Match did not match the current ETag',
  413: 'Body too large',
  415: 'Unsupported content type',
  429: 'Rate limit exceeded; retry after Retry-After (RateLimit and RateLimit-Policy describe the quota)',
  503: 'A dependency is unavailable; retry after Retry-After',
};

export function problems(...statuses: number[]): Record<number, ReturnType<typeof problem>> {
  return Object.fromEntries(statuses.map((s) => [s, problem(DESCRIPTIONS[s] ?? 'Error')]));
}
