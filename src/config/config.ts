/**
 * A replication group's configuration and the manager that keeps it, as
 * PacificA separates them (Lin et al., "PacificA: Replication in
 * Log-Based Distributed Storage Systems", 2008, §3): the data path runs
 * between the nodes; the configuration (who is primary, who replicates,
 * its version) is changed only by compare-and-swap at a manager that
 * keeps it by consensus. `dlock up` keeps it in process (memory.ts);
 * `dlock node` in etcd (etcd.ts).
 *
 * The contract every manager keeps (test/etcd/config-manager.test.ts runs the
 * same cases against each):
 *  - Versions rise by one per change and a version is stored once: two
 *    proposals from the same configuration cannot both win, so no two
 *    primaries are ever named by the same version.
 *  - propose() wins only if the stored configuration is exactly
 *    `expected` (null: none yet); either way it resolves with what is
 *    stored after it, so the loser learns who won.
 *  - watch() reports the stored configuration (if any), then every one
 *    stored after it (at least the latest of a quick succession), in
 *    rising version order, each once; a value that does not parse is
 *    reported as an error, never passed on.
 *
 * Threading: the calling thread; a manager is used from one thread.
 */
import { NODE_NAME } from '../codec/frame.js';

export interface GroupConfig {
  /** Rises by one with every change; every frame between members carries it. */
  readonly version: number;
  /** The member that orders writes. */
  readonly primary: string;
  /** The members that hold every committed write besides the primary. */
  readonly secondaries: readonly string[];
}

/** A group has at most this many members (the node index limit, MAX_NODE_INDEX + 1). */
export const MAX_GROUP_SIZE = 99;

/** A stored configuration that does not parse: not written by dlock, or damaged. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface ProposeResult {
  won: boolean;
  /** What is stored after the call: `next` if it won, else whatever won. */
  current: GroupConfig | null;
}

export interface ConfigManager {
  /** What is stored now (null: no configuration yet). Throws ConfigError for a stored value that does not parse. */
  current(): Promise<GroupConfig | null>;
  /**
   * Store `next` if what is stored is `expected` (null: nothing yet).
   * `next.version` must be one above `expected`'s (1 for the first);
   * anything else is a RangeError, as is a `next` that checkConfig refuses.
   */
  propose(expected: GroupConfig | null, next: GroupConfig): Promise<ProposeResult>;
  /** Follow the stored configuration (see the contract above); returns a function that stops it. */
  watch(onChange: (c: GroupConfig) => void, onError: (err: Error) => void): () => void;
  close(): Promise<void>;
}

/** Why `c` is not a configuration, or null when it is one. */
export function configProblem(c: unknown): string | null {
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return 'not an object';
  const x = c as Record<string, unknown>;
  for (const k of Object.keys(x)) if (k !== 'version' && k !== 'primary' && k !== 'secondaries') return `unknown field ${JSON.stringify(k.slice(0, 40))}`;
  if (typeof x['version'] !== 'number' || !Number.isSafeInteger(x['version']) || x['version'] < 1) return 'version is not a whole number >= 1';
  if (typeof x['primary'] !== 'string' || !NODE_NAME.test(x['primary'])) return 'primary is not a node name';
  const s = x['secondaries'];
  if (!Array.isArray(s) || s.length >= MAX_GROUP_SIZE) return `secondaries is not a list of at most ${MAX_GROUP_SIZE - 1} names`;
  const seen = new Set<string>([x['primary']]);
  for (const n of s) {
    if (typeof n !== 'string' || !NODE_NAME.test(n)) return 'a secondary is not a node name';
    if (seen.has(n)) return `${n} is named twice`;
    seen.add(n);
  }
  return null;
}

/** Throws RangeError unless `next` may follow `expected`. */
export function checkProposal(expected: GroupConfig | null, next: GroupConfig): void {
  const why = configProblem(next);
  if (why !== null) throw new RangeError(`not a configuration: ${why}`);
  const want = (expected?.version ?? 0) + 1;
  if (next.version !== want) throw new RangeError(`configuration version ${next.version} cannot follow ${expected === null ? 'none' : `version ${expected.version}`}: it must be ${want}`);
}

/** The stored form: canonical (fields in one order), so equal configurations have equal bytes. */
export function encodeConfig(c: GroupConfig): string {
  return JSON.stringify({ version: c.version, primary: c.primary, secondaries: [...c.secondaries] });
}

/** A stored configuration, checked; ConfigError when it is not one. */
export function decodeConfig(text: string, where: string): GroupConfig {
  if (text.length > 64 * 1024) throw new ConfigError(`the configuration at ${where} is ${text.length} bytes, more than any configuration`);
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    throw new ConfigError(`the configuration at ${where} is not JSON`);
  }
  const why = configProblem(x);
  if (why !== null) throw new ConfigError(`the configuration at ${where} is not one: ${why}`);
  const c = x as GroupConfig;
  return { version: c.version, primary: c.primary, secondaries: [...c.secondaries] };
}

export const sameConfig = (a: GroupConfig | null, b: GroupConfig | null): boolean => (a === null || b === null ? a === b : encodeConfig(a) === encodeConfig(b));

/** reseed() found a member of the stored configuration still live, or lost the compare-and-swap to another change. */
export class ReseedRefusedError extends Error {
  override readonly name = 'ReseedRefusedError';
}

/**
 * Every member of the stored configuration is lost (killed without a
 * data dir): store a new group with `id` as its only member, at the next
 * version. What only the lost members held is lost with them; fencing
 * tokens still rise, since each version's tokens lie above every earlier
 * version's (core/token-space.ts) [LP-7].
 *
 * An operator's decision, never taken on its own: a member cut off from
 * the manager but alive would go on serving beside the new group. `live`
 * names the members known to be running (their live keys); any of them
 * in the stored configuration refuses the reseed.
 */
export async function reseed(m: ConfigManager, id: string, live: ReadonlySet<string>): Promise<{ before: GroupConfig | null; after: GroupConfig }> {
  const before = await m.current();
  const members = before === null ? [] : [before.primary, ...before.secondaries];
  const running = members.filter((x) => live.has(x));
  if (running.length > 0) throw new ReseedRefusedError(`${running.join(', ')} of configuration ${before?.version} ${running.length === 1 ? 'is' : 'are'} still live: a new group would serve beside ${running.length === 1 ? 'it' : 'them'}`);
  const next: GroupConfig = { version: (before?.version ?? 0) + 1, primary: id, secondaries: [] };
  const r = await m.propose(before, next);
  if (!r.won) throw new ReseedRefusedError(`the configuration changed meanwhile (now version ${r.current?.version}): try again`);
  return { before, after: next };
}

/** replaceRuns() found an earlier run still live, or could not win a compare-and-swap. */
export class ReplaceRefusedError extends Error {
  override readonly name = 'ReplaceRefusedError';
}

/**
 * A run that restored its predecessors' log (a data dir) takes their place
 * in the stored configuration: the member among `earlier` becomes `id`, at
 * the next version, by compare-and-swap, tried again while other changes
 * win. Safe because that log holds everything those runs acknowledged
 * (pacifica.ts: a host persists before it acks), so the group loses
 * nothing it committed, and those runs are gone: none of them may be in
 * `live` (the runs live in etcd). Their own id would not do for the new
 * run: lease times on their monotonic clock mean nothing on its own.
 * Returns the run it replaced (null: none was a member) and what is stored.
 */
export async function replaceRuns(m: ConfigManager, earlier: readonly string[], id: string, live: ReadonlySet<string>): Promise<{ replaced: string | null; current: GroupConfig | null }> {
  const mine = new Set(earlier.filter((r) => r !== id));
  const running = [...mine].filter((r) => live.has(r));
  if (running.length > 0) throw new ReplaceRefusedError(`an earlier run of this node (${running.join(', ')}) is still live: it must end before this one takes its place`);
  for (let tries = 0; ; tries++) {
    const c = await m.current();
    const replaced = c === null ? undefined : [c.primary, ...c.secondaries].find((x) => mine.has(x));
    if (c === null || replaced === undefined) return { replaced: null, current: c };
    const next: GroupConfig = {
      version: c.version + 1,
      primary: mine.has(c.primary) ? id : c.primary,
      secondaries: mine.has(c.primary) ? c.secondaries.filter((s) => !mine.has(s)) : [...c.secondaries.filter((s) => !mine.has(s)), id],
    };
    const r = await m.propose(c, next);
    if (r.won) return { replaced, current: next };
    if (tries >= 20) throw new ReplaceRefusedError(`the configuration kept changing (now version ${r.current?.version}): this run could not take ${replaced}'s place`);
  }
}
