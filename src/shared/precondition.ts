/** What If-Match asked for: any current version ('*') or one of these versions; undefined: no condition. */
export type Precondition = '*' | number[] | undefined;
