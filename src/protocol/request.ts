/**
 * Requests of the client protocol (../shared/protocol.md) and the parser of
 * one request line into a typed request or a recoverable error [LP-12].
 *
 * The verb table below is the single description of the verbs: the parser,
 * the error messages ("usage: …") and the `help` reply are all derived from it.
 */

import { BAD_NAME_CHAR, isLockValue, MAX_HOLDERS, MAX_LOCK_BYTES, MAX_MS, MAX_NAMES, MAX_VALUE_BYTES } from '../core/command-check.js';

export { MAX_HOLDERS, MAX_LOCK_BYTES, MAX_MS, MAX_NAMES, MAX_VALUE_BYTES }; // [LP-12, LP-18]: the lock table's own rules (core/command-check.ts)
export const MAX_LINE_BYTES = 4096; // [LP-13]

export type Request =
  /**
   * `value`: the lock's value its grant sets [LP-18]; absent for none.
   * `shared` [LP-20] or `limit` [LP-21]: a hold among several; `locks`
   * [LP-22]: every lock named (2 to 16, `lock` the first), all or nothing.
   */
  | { verb: 'preempt'; lock: string; ttl: number | null; value?: string; shared?: true; limit?: number; locks?: string[] }
  | { verb: 'acquire'; lock: string; ttl: number | null; timeout: number | null; value?: string; shared?: true; limit?: number; locks?: string[] }
  /** `locks` [LP-22]: release every one (2 to 16, `lock` the first) or none. */
  | { verb: 'release'; lock: string; locks?: string[] }
  | { verb: 'renew'; lock: string; ttl: number }
  | { verb: 'check'; lock: string }
  | { verb: 'validate'; lock: string; token: number }
  /** [LP-15] `secret` is never logged or echoed. */
  | { verb: 'auth'; secret: string }
  | { verb: 'whoami' }
  /** [LP-17] a read barrier: answered once this node has applied every write committed before it read the request. */
  | { verb: 'sync' }
  /**
   * [LP-19] wait for the first committed change to `lock`; `expect`: the
   * state the client last saw (answered at once if the lock is not in it),
   * null for none; `timeout` ms, null for as long as the connection lives.
   */
  | { verb: 'watch'; lock: string; expect: { free: true } | { token: number; holders: number | null } | null; timeout: number | null }
  /** [LP-16] this connection's secret, to resume it as this client from another connection. */
  | { verb: 'session'; ttl: number | null }
  /** [LP-16] become client `client` again; `secret` is never logged or echoed. */
  | { verb: 'resume'; client: number; secret: string }
  | { verb: 'ping' }
  | { verb: 'help' }
  | { verb: 'quit' };

export type Verb = Request['verb'];

/** A numeric option (ms from `min` up to MAX_MS), or a text one (`text`: LP-18's value). */
interface OptionSpec {
  min: number;
  required: boolean;
  text?: true;
  /** A count up to MAX_HOLDERS rather than ms [LP-21]. */
  count?: true;
}

interface VerbSpec {
  /** Positional arguments, in order. */
  args: ReadonlyArray<'lock' | 'token' | 'secret' | 'client'>;
  options: Readonly<Record<string, OptionSpec>>;
  usage: string;
}

const TTL: OptionSpec = { min: 1, required: false };
const VALUE: OptionSpec = { min: 1, required: false, text: true };
/** [LP-21] a count, not ms: checked on its own (MAX_HOLDERS). */
const LIMIT: OptionSpec = { min: 1, required: false, count: true };

export const VERBS: Readonly<Record<Verb, VerbSpec>> = {
  preempt: { args: ['lock'], options: { ttl: TTL, value: VALUE, limit: LIMIT }, usage: 'preempt <lock> [<lock>…] [shared|limit=<n>] [ttl=<ms>] [value=<v>]' },
  acquire: { args: ['lock'], options: { timeout: { min: 0, required: false }, ttl: TTL, value: VALUE, limit: LIMIT }, usage: 'acquire <lock> [<lock>…] [shared|limit=<n>] [timeout=<ms>] [ttl=<ms>] [value=<v>]' },
  release: { args: ['lock'], options: {}, usage: 'release <lock> [<lock>…]' },
  renew: { args: ['lock'], options: { ttl: { min: 1, required: true } }, usage: 'renew <lock> ttl=<ms>' },
  check: { args: ['lock'], options: {}, usage: 'check <lock>' },
  validate: { args: ['lock', 'token'], options: {}, usage: 'validate <lock> <token>' },
  auth: { args: ['secret'], options: {}, usage: 'auth <token>' },
  whoami: { args: [], options: {}, usage: 'whoami' },
  sync: { args: [], options: {}, usage: 'sync' },
  watch: { args: ['lock'], options: { timeout: { min: 0, required: false } }, usage: 'watch <lock> [free|token=<t> [holders=<k>]] [timeout=<ms>]' },
  session: { args: [], options: { ttl: TTL }, usage: 'session [ttl=<ms>]' },
  resume: { args: ['client', 'secret'], options: {}, usage: 'resume <client_id> <secret>' },
  ping: { args: [], options: {}, usage: 'ping' },
  help: { args: [], options: {}, usage: 'help' },
  quit: { args: [], options: {}, usage: 'quit' },
};

const VERB_NAMES = Object.keys(VERBS) as Verb[];

/** The one-line `help` reply. */
export const HELP_LINE = `Help: ${VERB_NAMES.map((v) => VERBS[v].usage).join(' | ')}`;

export interface ParseError {
  error: string;
}

/** Quote a client-sent word for an error message: printable, one line, bounded. */
export function quote(word: string): string {
  const shown = word.length > 40 ? `${word.slice(0, 40)}…` : word;
  return JSON.stringify(shown);
}

// Control characters (C0, DEL and C1) and whitespace are refused by
// BAD_NAME_CHAR [LP-12]; whitespace never reaches here because words are
// split on it, but other Unicode spaces count as whitespace too.

/**
 * [LP-15] An auth token must travel as one word of `auth <token>`: the
 * rule for a node's --auth-token and a client's token alike.
 */
export const TOKEN_RULE = 'must be one word: not empty, no whitespace';
export const isTokenWord = (token: string): boolean => token !== '' && !/\s/.test(token);

export function lockNameError(name: string): string | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes < 1 || bytes > MAX_LOCK_BYTES || BAD_NAME_CHAR.test(name)) {
    return `bad lock name ${quote(name)}: expected 1 to ${MAX_LOCK_BYTES} bytes with no whitespace or control characters`;
  }
  return null;
}

/** [LP-18] Why `value` is not a lock value, or null. */
export function lockValueError(value: string): string | null {
  return isLockValue(value) ? null : `bad value ${quote(value)}: expected 1 to ${MAX_VALUE_BYTES} bytes with no whitespace or control characters (percent-encode the rest)`;
}

/** [LP-19] `watch <lock> [free|token=<t> [holders=<k>]] [timeout=<ms>]`, its words after the verb. */
function parseWatch(words: string[], usage: string): Request | ParseError {
  const lock = words[1];
  if (lock === undefined) return { error: `watch needs a lock name; usage: ${usage}` };
  const bad = lockNameError(lock);
  if (bad !== null) return { error: bad };
  let free = false;
  let token: number | null = null;
  let holders: number | null = null;
  let timeout: number | null = null;
  for (const word of words.slice(2)) {
    const eq = word.indexOf('=');
    const key = eq === -1 ? word : word.slice(0, eq);
    const text = word.slice(eq + 1);
    const twice = { error: `${key} given twice; usage: ${usage}` };
    if (word === 'free') {
      if (free) return twice;
      free = true;
    } else if (key === 'token' && eq !== -1) {
      if (token !== null) return twice;
      token = wholeNumber(text);
      if (token === null || token < 1) return { error: `token must be a positive whole number, got ${quote(text)}; usage: ${usage}` };
    } else if (key === 'holders' && eq !== -1) {
      if (holders !== null) return twice;
      holders = wholeNumber(text);
      if (holders === null || holders < 1) return { error: `holders must be a positive whole number, got ${quote(text)}; usage: ${usage}` };
    } else if (key === 'timeout' && eq !== -1) {
      if (timeout !== null) return twice;
      timeout = wholeNumber(text);
      if (timeout === null || timeout > MAX_MS) return { error: `timeout must be a whole number of milliseconds from 0 to ${MAX_MS}, got ${quote(text)}` };
    } else {
      return { error: `unexpected argument ${quote(word)}; usage: ${usage}` };
    }
  }
  if (free && token !== null) return { error: `free and token= name two states; give one; usage: ${usage}` };
  if (holders !== null && token === null) return { error: `holders= goes with token=; usage: ${usage}` };
  const expect = free ? { free: true as const } : token !== null ? { token, holders } : null;
  return { verb: 'watch', lock, expect, timeout };
}

/** Words not taken as a second or later lock name [LP-22]: a kind of hold or an option's key, in any case. */
const RESERVED = /^(shared|limit|ttl|timeout|value)$/i;

const DIGITS = /^[0-9]{1,16}$/;

/** Parse a whole non-negative decimal number; null when it is not one. */
function wholeNumber(text: string): number | null {
  if (!DIGITS.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * Parse one request line (line end already removed, valid UTF-8). Returns
 * null for an empty or all-blank line, which is not a request [LP-2].
 */
export function parseRequest(line: string): Request | ParseError | null {
  const words = line.split(/[ \t]+/);
  if (words[0] === '') words.shift();
  if (words.length > 0 && words[words.length - 1] === '') words.pop();
  if (words.length === 0) return null;

  const verbWord = words[0] as string;
  const verb = verbWord.toLowerCase() as Verb; // [LP-12] verbs are case-insensitive
  const spec = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (spec === undefined) {
    return { error: `unknown command ${quote(verbWord)}; expected one of: ${VERB_NAMES.join(', ')}` };
  }
  if (verb === 'watch') return parseWatch(words, spec.usage);

  const positional: string[] = [];
  const options = new Map<string, number>();
  let value: string | undefined;
  // [LP-20, LP-22] preempt, acquire and release: more lock names after the first; `shared` for preempt and acquire.
  const more: string[] = [];
  let shared = false;
  const several = verb === 'preempt' || verb === 'acquire' || verb === 'release';
  for (let i = 1; i < words.length; i++) {
    const word = words[i] as string;
    if (positional.length < spec.args.length) {
      positional.push(word);
      continue;
    }
    const eq = word.indexOf('=');
    if (several && eq === -1) {
      if (word === 'shared' && verb !== 'release') {
        if (shared) return { error: `shared given twice; usage: ${spec.usage}` };
        shared = true;
        continue;
      }
      // A word that means a kind of hold or an option is never taken for another lock's name: a typo must not become a hold of several locks.
      if (RESERVED.test(word)) {
        if (/^shared$/i.test(word)) return { error: verb === 'release' ? `release takes lock names only: a hold is released whatever its kind; usage: ${spec.usage}` : `write shared in lowercase; usage: ${spec.usage}` };
        return { error: `${quote(word)} needs =<value>: options are key=value; usage: ${spec.usage}` };
      }
      more.push(word);
      continue;
    }
    // [LP-15, LP-16] never echo what may be part of a secret
    if (verb === 'auth') return { error: `auth takes one word, the token; usage: ${spec.usage}` };
    if (verb === 'resume') return { error: `resume takes two words, the client id and its secret; usage: ${spec.usage}` };
    if (eq <= 0) return { error: `unexpected argument ${quote(word)}; usage: ${spec.usage}` };
    const key = word.slice(0, eq);
    const opt = Object.hasOwn(spec.options, key) ? spec.options[key] : undefined;
    if (opt === undefined) {
      const allowed = Object.keys(spec.options);
      const what = allowed.length === 0 ? `${verb} takes no options` : `${verb} takes ${allowed.join(', ')}`;
      return { error: `unknown option ${quote(key)}: ${what}; usage: ${spec.usage}` };
    }
    if (options.has(key) || (opt.text === true && value !== undefined)) return { error: `option ${key} given twice; usage: ${spec.usage}` };
    if (opt.text === true) {
      value = word.slice(eq + 1);
      const bad = lockValueError(value);
      if (bad !== null) return { error: bad };
      continue;
    }
    if (opt.count === true) {
      const n = wholeNumber(word.slice(eq + 1));
      if (n === null || n < 1 || n > MAX_HOLDERS) return { error: `${key} must be a whole number from 1 to ${MAX_HOLDERS}, got ${quote(word.slice(eq + 1))}` };
      options.set(key, n);
      continue;
    }
    const ms = wholeNumber(word.slice(eq + 1));
    if (ms === null || ms < opt.min || ms > MAX_MS) {
      return { error: `${key} must be a whole number of milliseconds from ${opt.min} to ${MAX_MS}, got ${quote(word.slice(eq + 1))}` };
    }
    options.set(key, ms);
  }
  if (positional.length < spec.args.length) {
    const arg = spec.args[positional.length];
    const missing = arg === 'lock' ? 'a lock name' : arg === 'secret' ? (verb === 'resume' ? 'the secret' : 'the auth token') : arg === 'client' ? 'a client id' : 'a token';
    return { error: `${verb} needs ${missing}; usage: ${spec.usage}` };
  }
  for (const [key, opt] of Object.entries(spec.options)) {
    if (opt.required && !options.has(key)) return { error: `${verb} needs ${key}=<ms>; usage: ${spec.usage}` };
  }

  let lock = '';
  if (spec.args[0] === 'lock') {
    lock = positional[0] as string;
    const bad = lockNameError(lock);
    if (bad !== null) return { error: bad };
  }
  const ttl = options.get('ttl') ?? null;
  let locks: string[] | undefined;
  if (more.length > 0) {
    // [LP-22] 2 to 16 distinct names, all or nothing
    locks = [lock, ...more];
    for (const name of more) {
      const bad = lockNameError(name);
      if (bad !== null) return { error: bad };
    }
    if (locks.length > MAX_NAMES) return { error: `${verb} takes at most ${MAX_NAMES} lock names, got ${locks.length}; usage: ${spec.usage}` };
    const seen = new Set<string>();
    for (const name of locks) {
      if (seen.has(name)) return { error: `lock ${quote(name)} named twice: name each lock once; usage: ${spec.usage}` };
      seen.add(name);
    }
  }
  const limit = options.get('limit');
  if (shared && limit !== undefined) return { error: `shared and limit= name two kinds of hold; give one; usage: ${spec.usage}` };
  if (locks !== undefined && (shared || limit !== undefined)) return { error: `several locks are held alone: ${shared ? 'shared' : 'limit='} goes with one lock; usage: ${spec.usage}` };
  if (value !== undefined && (shared || limit !== undefined)) return { error: `a value is for a lock held by one client alone, not with ${shared ? 'shared' : 'limit='}; usage: ${spec.usage}` };
  const kind = locks !== undefined ? { locks } : shared ? { shared: true as const } : limit !== undefined ? { limit } : {};
  switch (verb) {
    case 'preempt':
      return value === undefined ? { verb, lock, ttl, ...kind } : { verb, lock, ttl, value, ...kind };
    case 'acquire':
      return value === undefined ? { verb, lock, ttl, timeout: options.get('timeout') ?? null, ...kind } : { verb, lock, ttl, timeout: options.get('timeout') ?? null, value, ...kind };
    case 'release':
      return locks === undefined ? { verb, lock } : { verb, lock, locks };
    case 'check':
      return { verb, lock };
    case 'renew':
      return { verb, lock, ttl: ttl as number };
    case 'validate': {
      const tokenText = positional[1] as string;
      const token = wholeNumber(tokenText);
      if (token === null || token < 1) {
        return { error: `token must be a positive whole number, got ${quote(tokenText)}; usage: ${spec.usage}` };
      }
      return { verb, lock, token };
    }
    case 'auth':
      return { verb, secret: positional[0] as string };
    case 'resume': {
      const idText = positional[0] as string;
      const client = wholeNumber(idText);
      if (client === null || client < 1) return { error: `client id must be a positive whole number, got ${quote(idText)}; usage: ${spec.usage}` };
      return { verb, client, secret: positional[1] as string };
    }
    case 'session':
      return { verb, ttl };
    case 'whoami':
    case 'sync':
    case 'ping':
    case 'help':
    case 'quit':
      return { verb };
  }
}
