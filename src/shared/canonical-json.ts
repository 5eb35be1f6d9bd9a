// A canonical JSON text of a parsed value: object keys sorted (recursively), no whitespace. Two
// bodies that differ only in key order or spacing have the same text, so the same fingerprint.
// Written with an explicit stack rather than recursion: a request body may nest thousands of
// levels deep (JSON.parse takes it), and it is read here before validation can refuse it.

/** Text to emit as is, between the values still to be written. */
class Raw {
  constructor(readonly text: string) {}
}

export function canonicalJson(value: unknown): string {
  if (value === undefined) return '';
  const out: string[] = [];
  const todo: unknown[] = [value];
  while (todo.length > 0) {
    const item = todo.pop();
    if (item instanceof Raw) {
      out.push(item.text);
    } else if (Array.isArray(item)) {
      out.push('[');
      todo.push(new Raw(']'));
      for (let i = item.length - 1; i >= 0; i--) {
        todo.push(item[i] === undefined ? null : item[i]);
        if (i > 0) todo.push(new Raw(','));
      }
    } else if (item !== null && typeof item === 'object') {
      const record = item as Record<string, unknown>;
      const keys = Object.keys(record)
        .filter((k) => record[k] !== undefined)
        .sort();
      out.push('{');
      todo.push(new Raw('}'));
      for (let i = keys.length - 1; i >= 0; i--) {
        todo.push(record[keys[i]!], new Raw(`${JSON.stringify(keys[i])}:`));
        if (i > 0) todo.push(new Raw(','));
      }
    } else {
      out.push(JSON.stringify(item) ?? 'null');
    }
  }
  return out.join('');
}
