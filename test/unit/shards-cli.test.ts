// `task-api shards status|move|rebalance` refusing its arguments (src/operations/shards.ts):
// exit code 2, what is wrong, then the usage. No database is opened: the fleet is replaced by one
// that fails the test if the command ever gets that far.
import { beforeEach, describe, expect, it, vi } from 'vitest';

vi.mock('../../src/infra/shards/fleet.js', () => ({
  openFleet: vi.fn(() => Promise.reject(new Error('the command opened the shards: its arguments were accepted'))),
}));

const { shardsCommand, SHARDS_USAGE } = await import('../../src/operations/shards.js');
const { openFleet } = await import('../../src/infra/shards/fleet.js');

async function run(args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await shardsCommand(args, (line) => lines.push(line));
  return { code, lines };
}

describe('task-api shards: bad arguments', () => {
  beforeEach(() => {
    vi.mocked(openFleet).mockClear();
  });

  it.each([
    [[], 'name a command'],
    [['frobnicate'], 'unknown command "frobnicate"'],
    [['--json'], 'unknown command "--json"'],
    [['move'], 'move: --bucket B and --to S are required'],
    [['move', '--bucket', '3'], 'move: --bucket B and --to S are required'],
    [['move', '--to', 's2'], 'move: --bucket B and --to S are required'],
    [['move', '--bucket', 'three', '--to', 's2'], '--bucket: a whole number from 0 to 1023 (got "three")'],
    [['move', '--bucket', '', '--to', 's2'], '--bucket: a whole number from 0 to 1023 (got "")'],
    [['move', '--bucket', '1024', '--to', 's2'], '--bucket: a whole number from 0 to 1023 (got "1024")'],
    [['move', '--bucket', '1.5', '--to', 's2'], '--bucket: a whole number from 0 to 1023 (got "1.5")'],
    [['move', '--bucket', '-1', '--to', 's2'], '--bucket: a whole number from 0 to 1023 (got "-1")'],
    [['move', '--bucket', '--to', 's2'], '--bucket: needs a value'],
    [['move', '--bucket', '3', '--to'], '--to: needs a value'],
    [['status', '--verbose'], 'unknown argument "--verbose"'],
    [['status', 'extra'], 'unknown argument "extra"'],
    [['rebalance', '--max-moves', '0'], '--max-moves: a whole number from 1 to 1024 (got "0")'],
    [['rebalance', '--max-skew', 'lots'], '--max-skew: a number of at least 0 (got "lots")'],
    [['rebalance', '--grace-ms', 'NaN'], '--grace-ms: a whole number from 0 to 9007199254740991 (got "NaN")'],
    [['rebalance', '--dir'], '--dir: needs a value'],
  ])('%j: exits 2 with "%s" and the usage', async (args, problem) => {
    const { code, lines } = await run(args);
    expect(code).toBe(2);
    expect(lines).toEqual([`shards: ${problem}`, SHARDS_USAGE]);
    expect(openFleet).not.toHaveBeenCalled();
  });

  it('prints a usage that names every command and flag', () => {
    for (const word of ['status', 'move', 'rebalance', '--bucket', '--to', '--max-skew', '--max-moves', '--dry-run', '--json', '--dir', '--grace-ms', '--outbox-wait-ms']) {
      expect(SHARDS_USAGE).toContain(word);
    }
  });

  it('goes on to open the shards once the arguments are good (here: the stand-in refuses)', async () => {
    await expect(run(['move', '--bucket', '3', '--to', 's2'])).rejects.toThrow('its arguments were accepted');
    expect(openFleet).toHaveBeenCalledTimes(1);
  });
});
