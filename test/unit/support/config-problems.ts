// What a config loader refuses: the problems of the ConfigError it throws, one per line.
import { expect } from 'vitest';
import { ConfigError } from '../../../src/config.js';

export function problemsOf<E>(load: (env: E) => unknown, env: E): string {
  try {
    load(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.join('\n');
  }
  throw new Error('expected a ConfigError');
}
