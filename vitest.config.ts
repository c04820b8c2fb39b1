import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * The token floor of a memory-only dlock up lives in $XDG_STATE_HOME
 * (src/store/token-floor.ts): the nodes the tests start keep theirs in a
 * temporary directory, not in the home of whoever runs the tests.
 */
const stateHome = mkdtempSync(join(tmpdir(), 'dlock-test-state-'));

/**
 * What a user's shell may have set for dlock (a DLOCK_SESSION from `eval
 * "$(dlock client session)"`, DLOCK_PORT, DLOCK_ETCD, tokens) must not reach
 * the nodes and clients the tests start: each test sets what it means to.
 * The tests' own switches (DLOCK_TEST_*) stay.
 */
for (const k of Object.keys(process.env)) if (k.startsWith('DLOCK_') && !k.startsWith('DLOCK_TEST_')) delete process.env[k];

/**
 * Tests that cut hosts off or kill etcd members measure how a cluster
 * recovers within budgets (a write answered within 30 s of a partition).
 * On CI's 2 cores, with every other test file running beside them, etcd's
 * own elections were starved for 20 s and more (seen: a majority write
 * unanswered for 30 s while two busy loops ran beside the partition test).
 * So they run last, one at a time, with nothing else running.
 */
const ALONE = ['test/etcd/partition.test.ts', 'test/etcd/etcd-faults.test.ts', 'test/etcd/safety-procs.test.ts'];

export default defineConfig({
  test: {
    // Cluster tests start real worker threads and TCP listeners; CI has 2 cores.
    testTimeout: 30_000,
    env: { XDG_STATE_HOME: stateHome },
    hookTimeout: 30_000,
    projects: [
      {
        extends: true,
        test: { name: 'parallel', include: ['test/**/*.test.ts'], exclude: ALONE, fileParallelism: true, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'alone', include: ALONE, fileParallelism: false, maxWorkers: 1, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
