/**
 * The client library's examples run as they are written: each ```ts
 * block of the README's "## The client library" and of docs/library.md
 * becomes a module whose body is the block, run against a real cluster. Only the README's ports
 * (9001 the leader, 9002 and 9003 the followers) are mapped to the test
 * cluster's, and `stepDown`, `log`, `storage` and `data` stand for the
 * reader's own code.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DlockClient } from '../../src/client/client.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const LIBRARY = fileURLToPath(new URL('../../docs/library.md', import.meta.url));
const DIR = fileURLToPath(new URL('./.readme-examples/', import.meta.url));
const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url));

/** The ```ts blocks of the README's "## The client library" section, then of docs/library.md. */
function examples(): string[] {
  const text = readFileSync(README, 'utf8');
  const from = text.indexOf('## The client library');
  const to = text.indexOf('\n## ', from + 1);
  const section = text.slice(from, to === -1 ? undefined : to) + readFileSync(LIBRARY, 'utf8');
  return [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] as string);
}

let t: TestCluster;
beforeAll(async () => {
  t = await startCluster(2);
  mkdirSync(DIR, { recursive: true });
});
afterAll(async () => {
  rmSync(DIR, { recursive: true, force: true });
  await t.cluster.close();
});

interface Ctx {
  port: (readmePort: number) => number;
  track: (c: Promise<DlockClient>) => Promise<DlockClient>;
  stepDown: (err: Error) => void;
  log: (text: string) => void;
  storage: { write: (data: unknown, opts: { fencingToken: number; signal: AbortSignal }) => Promise<void> };
  data: unknown;
}

describe('README and docs/library.md: the client library', () => {
  const blocks = examples();
  it('has examples', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
  });
  for (const [i, block] of blocks.entries()) {
    it(`example ${i + 1} runs as written`, async () => {
      const body = block.replace(/^import \{ connect \} from 'dlockd';\n/m, '').replace(/port: (900[123])\b/g, 'port: ctx.port($1)');
      const file = `${DIR}example-${i + 1}.ts`;
      writeFileSync(file, `import { connect as realConnect, type ConnectOptions } from ${JSON.stringify(INDEX)};\nexport default async function (ctx: any): Promise<void> {\n  const connect = (o: ConnectOptions) => ctx.track(realConnect(o));\n  const { stepDown, log, storage, data } = ctx;\n${body}\n}\n`);
      const opened: DlockClient[] = [];
      const written: number[] = [];
      const lost: string[] = [];
      const ctx: Ctx = {
        port: (p) => t.port({ 9001: 'leader', 9002: 'follower-1', 9003: 'follower-2' }[p] as string),
        track: async (c) => {
          const client = await c;
          opened.push(client);
          return client;
        },
        stepDown: (err) => void lost.push(err.message),
        log: () => {},
        storage: { write: async (_data, { fencingToken }) => void written.push(fencingToken) },
        data: 'payload',
      };
      const mod = (await import(file)) as { default: (ctx: Ctx) => Promise<void> };
      await mod.default(ctx);
      expect(lost).toEqual([]); // no lease of the example was lost while it ran
      expect(opened.length).toBeGreaterThan(0);
      for (const c of opened) c.abort();
      if (block.includes('storage.write')) expect(written).toHaveLength(1);
    });
  }
});
