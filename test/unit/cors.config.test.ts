// CORS_ORIGINS is validated like every other variable: each entry must be an origin exactly as a
// browser sends it, or it could never match.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function problemsOf(value: string): string[] {
  try {
    loadConfig({ CORS_ORIGINS: value });
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('CORS_ORIGINS', () => {
  it('is off (no origins) by default', () => {
    expect(loadConfig({}).cors).toEqual({ origins: [] });
  });

  it('reads comma-separated origins, spaces and empty entries ignored', () => {
    const cors = loadConfig({ CORS_ORIGINS: ' https://app.example.com,http://localhost:5173 ,, https://[::1]:8443' }).cors;
    expect(cors.origins).toEqual(['https://app.example.com', 'http://localhost:5173', 'https://[::1]:8443']);
  });

  it.each([
    ['*', 'https://app.example.com'],
    ['null', 'https://app.example.com'],
    ['app.example.com', 'https://app.example.com'],
    ['ftp://files.example.com', 'https://app.example.com'],
    ['https://app.example.com/', 'https://app.example.com'],
    ['https://app.example.com/path', 'https://app.example.com'],
    ['https://App.Example.com', 'https://app.example.com'],
    ['https://app.example.com:443', 'https://app.example.com'],
    ['https://user@app.example.com', 'https://app.example.com'],
  ])('rejects %s, suggesting %s', (value, suggestion) => {
    const problems = problemsOf(`https://ok.example.com,${value}`);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`CORS_ORIGINS: ${value} is not an origin`);
    expect(problems[0]).toContain(suggestion);
  });
});
