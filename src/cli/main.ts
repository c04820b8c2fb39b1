/**
 * The `dlock` command (yargs), as a function that ui/cli.ts runs with the
 * TUI: `dlock up` starts the cluster, `dlock node` one node across hosts,
 * `dlock client` sends requests (one, or interactively), `dlock lock` holds
 * a lock while a command runs.
 */
import { readFileSync } from 'node:fs';
import { readSecretFile } from '../secrets.js';
import { NODE_NAME } from '../codec/frame.js';
import { MIN_CLUSTER_SECRET } from '../transport/link-auth.js';
import { DEFAULT_NODE_TTL_S } from '../replication/etcd-members.js';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { repl } from '../client/repl.js';
import { encodeValue } from '../client/client.js';
import { lockFlagsError } from '../client/lock-command.js';
import { MAX_NODE_INDEX } from '../replica/client-ids.js';
import { up } from '../host/threads/up.js';
import { parseChaos } from '../host/threads/chaos.js';
import { checkLimitFlags, LIMIT_OPTIONS, limitsOf } from './limit-flags.js';
import { ADMIN_TOKEN_FILE_OPTION, adminTokenOf, AUTH_TOKEN_FILE_OPTION, authTokenOf, checkTokenFlags } from './secret-flags.js';
import { allowedHostsOf, HTTP_ALLOWED_HOST_OPTION } from './admin-flags.js';
import { isLoopback } from '../transport/hosts.js';
import { isTokenWord, TOKEN_RULE } from '../protocol/request.js';
import { FSYNC_MODES, type FsyncMode } from '../store/store.js';
import { describeEtcd, etcdErrorText, type EtcdAccess } from '../replication/etcd-access.js';
import type { UpOptions } from '../host/threads/up.js';
import type { ObserverAuth } from '../observe.js';
import { checkEtcdFlagsNeedEtcd, ETCD_ACCESS_OPTIONS, etcdAccessOf, type EtcdFlags } from './etcd-flags.js';


/** The commands, as the usage error lists them. */
const COMMANDS = ['up', 'node', 'status', 'tui', 'client', 'lock', 'watch', 'admin'] as const;

/** dlock's own version, from its own package.json (not the one of a project that installed it). */
function ownVersion(): string {
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  const v = (JSON.parse(text) as { version?: unknown }).version;
  return typeof v === 'string' ? v : 'unknown';
}

/**
 * After a server command's shutdown: what it bounded and gave up on (a call
 * to an etcd that does not answer) may still hold the event loop; the
 * process exits anyway, soon, with its status. Its output is written by then.
 */
function exitSoon(): void {
  setTimeout(() => process.exit(), 300).unref();
}

const portOption = (def: number, what: string) => ({ type: 'number' as const, default: def, describe: what });

/** --auth-token-file, else --auth-token, else DLOCK_AUTH_TOKEN (so the token need not show in `ps`), else none (secret-flags.ts). */
const authToken = authTokenOf;

/** A PEM file for a TLS flag, or a clear error and exit 1. */
function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    process.stderr.write(`dlock: ${flag} ${path}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (!/-----BEGIN [A-Z ]+-----/.test(text)) {
    process.stderr.write(`dlock: ${flag} ${path}: not a PEM file\n`);
    process.exit(1);
  }
  return text;
}

/** --cluster-secret-file's secret (a clear error and exit 1 if it cannot be used; a warning if others may read it). */
function clusterSecretFile(path: string): string {
  try {
    const f = readSecretFile(path, '--cluster-secret-file', MIN_CLUSTER_SECRET);
    if (f.warning !== null) process.stderr.write(`dlock: warning: ${f.warning}\n`);
    return f.secret;
  } catch (err) {
    process.stderr.write(`dlock: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

/** $DLOCK_PORT as a number (NaN if it is not one: the command's check says so), else `def`. */
const envPort = (def: number): number => (process.env['DLOCK_PORT'] === undefined ? def : Number(process.env['DLOCK_PORT']));

/** --nodes HOST:PORT,…, or an error saying what it takes. */
function nodeList(value: string): Array<{ host: string; port: number }> {
  return value.split(',').map((hp) => {
    const at = hp.lastIndexOf(':');
    const port = Number(hp.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--nodes takes HOST:PORT, comma-separated, got ${JSON.stringify(hp)}`);
    return { host: hp.slice(0, at), port };
  });
}

const CLUSTER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** --etcd and --cluster as the commands that read a cluster on etcd (status, tui) take them. */
/** --etcd where a command needs it: $DLOCK_ETCD when set, else required. */
const ETCD_OPTION =
  process.env['DLOCK_ETCD'] !== undefined && process.env['DLOCK_ETCD'] !== ''
    ? ({ type: 'string', default: process.env['DLOCK_ETCD'], describe: 'etcd client URLs or HOST:PORT, comma-separated (default: $DLOCK_ETCD)' } as const)
    : ({ type: 'string', demandOption: true, describe: 'etcd client URLs or HOST:PORT, comma-separated (or $DLOCK_ETCD)' } as const);
const CLUSTER_OPTION = { type: 'string', default: 'default', describe: 'the cluster\'s name (its key prefix /dlock/NAME/)' } as const;

/** --etcd for a client (client, lock): optional; $DLOCK_ETCD counts only when no --port or $DLOCK_PORT names a node. */
const CLIENT_ETCD_OPTION = { type: 'string', describe: 'find the nodes in etcd (its client URLs or HOST:PORT, comma-separated) instead of --port: the leader first (default: $DLOCK_ETCD when neither --port nor $DLOCK_PORT is given)' } as const;

/** The command line's words after the program (runCli's argv, without node and the script). */
let cliWords: string[] = [];

/** The etcd a client command finds its nodes in, or undefined: --port (or $DLOCK_PORT) names the node. */
function clientEtcd(a: { etcd?: string | undefined }): string | undefined {
  if (a.etcd !== undefined) return a.etcd;
  const portGiven = cliWords.some((w) => w === '--port' || w.startsWith('--port=')) || process.env['DLOCK_PORT'] !== undefined;
  const env = process.env['DLOCK_ETCD'];
  return portGiven || env === undefined || env === '' ? undefined : env;
}

/**
 * The flags every command that connects as a client takes (client, lock,
 * watch): the node (--port, --host, or found in etcd), the auth token and
 * TLS. One description, so their help texts agree.
 */
function clientConnectionOptions<T>(y: Argv<T>) {
  return y
    .option('port', { type: 'number', default: envPort(9001), describe: 'node to connect to: 9001 is the leader, 9002 follower-1, … (default: $DLOCK_PORT, else 9001)' })
    .option('host', { type: 'string', default: process.env['DLOCK_HOST'] ?? '127.0.0.1', describe: 'default: $DLOCK_HOST, else 127.0.0.1' })
    .option('auth-token', { type: 'string', describe: 'send "auth TOKEN" first (default: $DLOCK_AUTH_TOKEN)' })
    .option('auth-token-file', AUTH_TOKEN_FILE_OPTION)
    .option('tls', { type: 'boolean', default: false, describe: 'connect over TLS' })
    .option('tls-ca', { type: 'string', describe: 'with --tls: trust this CA certificate (PEM file), e.g. a self-signed server certificate' })
    .option('etcd', CLIENT_ETCD_OPTION)
    .option('cluster', CLUSTER_OPTION)
    .options(ETCD_ACCESS_OPTIONS);
}

type ClientConnectionFlags = ReturnType<typeof clientConnectionOptions<object>> extends Argv<infer A> ? A : never;

/** The node a client command talks to: --host/--port, or the first found in etcd (the leader). */
async function clientTarget(a: ClientConnectionFlags, command: string): Promise<{ host: string; port: number }> {
  const etcd = clientEtcd(a);
  return etcd === undefined ? { host: a.host, port: a.port } : ((await nodesFromEtcd({ ...a, etcd }, command))[0] as { host: string; port: number });
}

/** clientConnectionOptions' checks (yargs .check). */
function checkClientConnection(a: ClientConnectionFlags): void {
  checkTokenFlags(a);
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new Error('--port (or DLOCK_PORT) must be a port number from 1 to 65535');
  const etcd = clientEtcd(a);
  if (etcd !== undefined) checkEtcdCluster({ ...a, etcd });
  else checkEtcdFlagsNeedEtcd(a);
}

/** The TLS settings those flags ask for, or null. */
function clientTls(a: ClientConnectionFlags): { ca?: string } | null {
  return a.tls || a['tls-ca'] !== undefined ? { ...(a['tls-ca'] === undefined ? {} : { ca: readPem(a['tls-ca'], '--tls-ca') }) } : null;
}

/** The etcd `dlock admin` finds the admin API in, or undefined: --http-port names it. */
function adminEtcd(a: { etcd?: string | undefined }): string | undefined {
  if (a.etcd !== undefined) return a.etcd;
  const portGiven = cliWords.some((w) => w === '--http-port' || w.startsWith('--http-port='));
  const env = process.env['DLOCK_ETCD'];
  return portGiven || env === undefined || env === '' ? undefined : env;
}

/**
 * What `command` connects to in `cluster`, from etcd, the leader's first:
 * the nodes' client addresses, or (`admin`) their admin APIs. Exits 2 with
 * the reason when there are none.
 */
async function nodesFromEtcd(a: EtcdFlags & { cluster: string }, command: string, what: 'clients' | 'admin' = 'clients'): Promise<Array<{ host: string; port: number }>> {
  const { clusterStatus, clientAddresses, adminAddresses } = await import('../status.js');
  let found: Array<{ host: string; port: number }>;
  try {
    const s = await clusterStatus(etcdAccessOf(a), a.cluster);
    found = what === 'admin' ? adminAddresses(s) : clientAddresses(s);
  } catch (err) {
    process.stderr.write(`dlock ${command}: cannot read the cluster from etcd at ${describeEtcd(etcdAccessOf(a))}: ${etcdErrorText(etcdAccessOf(a), err as Error)}\n`);
    process.exit(2);
  }
  if (found.length === 0) {
    process.stderr.write(`dlock ${command}: no live node of cluster ${a.cluster} in etcd at ${describeEtcd(etcdAccessOf(a))}${what === 'admin' ? ' serves the admin API (start dlock node with --http-port)' : ''}\n`);
    process.exit(2);
  }
  return found;
}

function checkEtcdCluster(a: EtcdFlags & { cluster: string }): true {
  etcdAccessOf(a);
  if (!CLUSTER_NAME.test(a.cluster)) throw new Error('--cluster is 1 to 64 letters, digits, _ . or -');
  return true;
}

/**
 * The auth token of a node that listens (dlock up, dlock node): a valid
 * word, and required off loopback unless --insecure (anyone who
 * can reach the port could take or release any lock).
 */
function checkListenToken(token: string | null, host: string, insecure: boolean): void {
  if (token !== null && !isTokenWord(token)) throw new Error(`--auth-token (or DLOCK_AUTH_TOKEN) ${TOKEN_RULE}`);
  if (token === null && !insecure && !isLoopback(host)) {
    throw new Error(`refusing to listen on ${host} without --auth-token (or DLOCK_AUTH_TOKEN): anyone who can reach it could take any lock; add --insecure to do it anyway`);
  }
}

/** The admin API's options, the same on `dlock up` and `dlock node`. */
const HTTP_PORT_OPTION = { type: 'number', describe: 'serve the admin API (/health, /metrics, /locks, /clients, revoke) on this port; 0 picks a free one' } as const;
const HTTP_HOST_OPTION = { type: 'string', default: '127.0.0.1', describe: 'address the admin API binds' } as const;
const ADMIN_TOKEN_OPTION = { type: 'string', describe: 'Bearer token for /locks, /clients and revoke (default: $DLOCK_ADMIN_TOKEN; without one they are refused)' } as const;
const LOG_FORMAT_OPTION = { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'headless log lines: text, or one JSON object per line' };

interface AdminFlags {
  'http-port'?: number | undefined;
  'http-host': string;
  'admin-token'?: string | undefined;
  'admin-token-file'?: string | undefined;
  'http-allowed-host'?: Array<string | number> | undefined;
  insecure: boolean;
}

function checkAdmin(a: AdminFlags): void {
  checkTokenFlags(a);
  allowedHostsOf(a);
  if (a['http-port'] !== undefined && (!Number.isInteger(a['http-port']) || a['http-port'] < 0 || a['http-port'] > 65535)) throw new Error('--http-port must be a port number from 0 to 65535');
  const admin = adminTokenOf(a) ?? undefined;
  if (admin !== undefined && !isTokenWord(admin)) throw new Error(`--admin-token (or DLOCK_ADMIN_TOKEN) ${TOKEN_RULE}`);
  if (a['http-port'] !== undefined && !isLoopback(a['http-host']) && admin === undefined && !a.insecure) throw new Error(`refusing to serve the admin API on ${a['http-host']} without --admin-token: add one, or --insecure`);
}

const adminOf = (a: AdminFlags): { host: string; port: number; token: string | null; allowedHosts: string[] } | null =>
  a['http-port'] === undefined ? null : { host: a['http-host'], port: a['http-port'], token: adminTokenOf(a), allowedHosts: allowedHostsOf(a) };


/**
 * The screens the command can show: the terminal UI, handed in by the
 * entry point (ui/cli.ts). Nothing under src/ imports ui/, so the library,
 * the nodes and this command build and run without the TUI.
 */
export interface Screens {
  /** `dlock up` in the TUI, over a cluster it starts with these options; resolves with the exit status. */
  up(opts: UpOptions): Promise<number>;
  /** `dlock tui`: the TUI attached to a cluster on etcd; resolves with the exit status. */
  attach(source: AttachOptions, term: { authToken: string | null; tls: { cert: string } | null }): Promise<number>;
}

/** What `dlock tui` attaches with: etcd, the cluster, and what views are asked with (the cluster secret or admin token, TLS). */
export interface AttachOptions {
  etcd: EtcdAccess;
  cluster: string;
  observer: { secret: string | null; tls: ObserverAuth['tls'] };
}

/** Run the `dlock` command on `argv` (process.argv); `screens` loads the TUI when a command shows it. */
export async function runCli(argv: string[], screens: () => Promise<Screens>): Promise<void> {
  cliWords = argv.slice(2);
  await yargs(hideBin(argv))
    .scriptName('dlock')
    .usage('$0 <command> [options]')
    .command(
      'up',
      'start a leader and followers in one process',
      (y) =>
        y
          .option('followers', { type: 'number', default: 2, describe: `number of followers (0-${MAX_NODE_INDEX})` })
          .option('port', portOption(9001, 'base port: leader here, follower i at base+i; 0 picks free ports'))
          .option('host', { type: 'string', default: '127.0.0.1', describe: 'address every node binds' })
          .option('tui', { type: 'boolean', default: true, describe: 'terminal UI when run in a terminal; --no-tui logs to stdout' })
          .option('quiet', { type: 'boolean', default: false, describe: 'do not log each request, reply and replicated lock change' })
          .option('data-dir', { type: 'string', describe: 'keep the log here; a restart restores leases, tokens and client ids' })
          .option('fsync', { choices: FSYNC_MODES, default: 'batch' as FsyncMode, describe: 'with --data-dir: always (each write), batch (one per batch), off' })
          .option('chaos', { type: 'string', describe: 'inject faults on a schedule, e.g. kill-follower@3s,kill-leader@10s,delay@5s:20ms,drop-client@1s' })
          .option('first-token', { type: 'number', describe: 'first fencing token of an empty table (default: without --data-dir, above every earlier run\'s, from the token floor kept in $XDG_STATE_HOME/dlock or ~/.local/state/dlock; never the clock)' })
          .option('auth-token', { type: 'string', describe: 'clients must send "auth TOKEN" first (default: $DLOCK_AUTH_TOKEN)' })
          .option('auth-token-file', AUTH_TOKEN_FILE_OPTION)
          .option('insecure', { type: 'boolean', default: false, describe: 'allow binding a non-loopback address without an auth token' })
          .option('tls-cert', { type: 'string', describe: 'serve clients over TLS: certificate (PEM file); needs --tls-key' })
          .option('tls-key', { type: 'string', describe: 'serve clients over TLS: private key (PEM file); needs --tls-cert' })
          .options(LIMIT_OPTIONS)
          .option('etcd', { type: 'string', describe: 'keep the log and elect the leader on etcd: its client URLs, comma-separated (e.g. http://127.0.0.1:2379)' })
          .option('cluster', { type: 'string', default: 'default', describe: 'with --etcd: the cluster\'s name, its key prefix in etcd (/dlock/NAME/)' })
          .option('cluster-secret-file', { type: 'string', describe: 'with --etcd: the secret nodes prove to each other on their links, from this file (one word, at least 16 characters; the same as the cluster\'s dlock node processes use); default: one the cluster keeps in etcd' })
          .option('replication', { choices: ['primary-backup', 'group'] as const, default: 'primary-backup' as const, describe: 'how writes are replicated: primary-backup (the supervisor promotes a follower) or group (experimental: the primary/backup protocol of docs/design.md, the same as dlock node --replication group; tokens lie in the configuration version\'s space)' })
          .option('min-secondaries', { type: 'number', default: 0, describe: 'with --replication group: the primary takes writes only while the configuration holds at least this many secondaries (as dlock node --min-secondaries)' })
          .options(ETCD_ACCESS_OPTIONS)
          .option('http-port', HTTP_PORT_OPTION)
          .option('http-host', HTTP_HOST_OPTION)
          .option('admin-token', ADMIN_TOKEN_OPTION)
          .option('admin-token-file', ADMIN_TOKEN_FILE_OPTION)
          .option('http-allowed-host', HTTP_ALLOWED_HOST_OPTION)
          .option('log-format', LOG_FORMAT_OPTION)
          .check((a) => {
            checkAdmin(a);
            if (!Number.isInteger(a.followers) || a.followers < 0 || a.followers > MAX_NODE_INDEX) throw new Error(`--followers must be a whole number from 0 to ${MAX_NODE_INDEX}`);
            if (!Number.isInteger(a.port) || a.port < 0 || a.port + a.followers > 65535) throw new Error('--port must be 0, or a port that leaves room for every follower below 65536');
            if (a['first-token'] !== undefined && (!Number.isSafeInteger(a['first-token']) || a['first-token'] < 1)) throw new Error('--first-token must be a positive whole number');
            if (a['data-dir'] === '') throw new Error('--data-dir needs a directory');
            checkEtcdFlagsNeedEtcd(a);
            if (a['cluster-secret-file'] !== undefined && a.etcd === undefined) throw new Error('--cluster-secret-file goes with --etcd: in one process the nodes\' links are MessagePorts, which need no secret');
            if (a.etcd !== undefined) {
              etcdAccessOf({ ...a, etcd: a.etcd });
              if (a['data-dir'] !== undefined) throw new Error('--etcd and --data-dir: with etcd, the log is etcd\'s; give one or the other');
              if (!CLUSTER_NAME.test(a.cluster)) throw new Error('--cluster is 1 to 64 letters, digits, _ . or -');
            }
            if (!Number.isInteger(a['min-secondaries']) || a['min-secondaries'] < 0 || a['min-secondaries'] > a.followers) throw new Error(`--min-secondaries must be a whole number from 0 to --followers (${a.followers})`);
            if (a['min-secondaries'] > 0 && a.replication !== 'group') throw new Error('--min-secondaries goes with --replication group: the primary/backup engine commits a write once every follower linked has it');
            if (a.replication === 'group') {
              const with_ = [a.etcd !== undefined ? '--etcd' : null, a['first-token'] !== undefined ? '--first-token' : null].filter((x) => x !== null);
              if (with_.length > 0) throw new Error(`--replication group does not take ${with_.join(' or ')}: its configuration is kept in process (with --data-dir, on disk), its tokens in the configuration version's space`);
            }
            if (a.chaos !== undefined) parseChaos(a.chaos); // throws ChaosSpecError with the reason
            checkLimitFlags(a);
            if ((a['tls-cert'] === undefined) !== (a['tls-key'] === undefined)) throw new Error('--tls-cert and --tls-key go together');
            checkListenToken(authToken(a), a.host, a.insecure);
            return true;
          }),
      async (a) => {
        const etcd = a.etcd === undefined ? null : { access: etcdAccessOf({ ...a, etcd: a.etcd }), cluster: a.cluster, clusterSecret: a['cluster-secret-file'] === undefined ? null : clusterSecretFile(a['cluster-secret-file']) };
        const opts = { followers: a.followers, port: a.port, host: a.host, quiet: a.quiet, dataDir: a['data-dir'] ?? null, fsync: a.fsync, etcd, firstToken: a['first-token'], chaos: a.chaos === undefined ? null : parseChaos(a.chaos), authToken: authToken(a),
          tls: a['tls-cert'] === undefined || a['tls-key'] === undefined ? null : { cert: readPem(a['tls-cert'], '--tls-cert'), key: readPem(a['tls-key'], '--tls-key') },
          limits: limitsOf(a),
          admin: adminOf(a),
          logFormat: a['log-format'], group: a.replication === 'group', minSecondaries: a['min-secondaries'] };
        // The TUI needs a terminal on both ends; otherwise log to stdout.
        if (a.tui && process.stdout.isTTY && process.stdin.isTTY) {
          process.exitCode = await (await screens()).up(opts);
        } else {
          process.exitCode = await up(opts);
          exitSoon();
        }
      },
    )
    .command(
      'node',
      'run one node as its own process, on etcd (a cluster across hosts)',
      (y) =>
        y
          .option('etcd', ETCD_OPTION)
          .option('name', { type: 'string', demandOption: true, describe: 'this node\'s name, unique in the cluster; a restart under the same name keeps its index' })
          .option('host', { type: 'string', default: '127.0.0.1', describe: 'address it binds, for clients and for the other nodes' })
          .option('port', portOption(0, 'client port; 0 picks a free one (printed on the ready line)'))
          .option('cluster', { type: 'string', default: 'default', describe: 'the cluster\'s name, its key prefix in etcd (/dlock/NAME/)' })
          .options(ETCD_ACCESS_OPTIONS)
          .option('quiet', { type: 'boolean', default: false, describe: 'do not log each request, reply and replicated lock change' })
          .option('auth-token', { type: 'string', describe: 'clients must send "auth TOKEN" first (default: $DLOCK_AUTH_TOKEN); never the cluster secret' })
          .option('auth-token-file', AUTH_TOKEN_FILE_OPTION)
          .options(LIMIT_OPTIONS)
          .option('cluster-secret-file', { type: 'string', describe: 'the secret nodes prove to each other on their links, from this file (one word, at least 16 characters; the same on every node); default: one the cluster keeps in etcd' })
          .option('insecure', { type: 'boolean', default: false, describe: 'allow binding a non-loopback address without an auth token' })
          .option('first-token', { type: 'number', describe: 'with --replication etcd: a new cluster\'s first fencing token (default: from etcd\'s revision, (revision + 1) × 65536, which only goes up); a cluster that has one keeps it. The group protocol\'s tokens come from its configuration version, from 1' })
          .option('tls-cert', { type: 'string', describe: 'serve clients and link to the other nodes over TLS: certificate (PEM file); needs --tls-key' })
          .option('tls-key', { type: 'string', describe: 'TLS private key (PEM file); needs --tls-cert' })
          .option('tls-ca', { type: 'string', describe: 'with --tls-cert (required): the CA that signed every node\'s certificate; node links are mutual TLS, and a peer without such a certificate is refused (PEM file)' })
          .option('node-ttl', { type: 'number', default: DEFAULT_NODE_TTL_S, describe: 'seconds: this node\'s etcd lease; when it dies, its clients\' session locks end this long after, and it stops serving if it cannot renew within ttl − margin' })
          .option('http-port', HTTP_PORT_OPTION)
          .option('http-host', HTTP_HOST_OPTION)
          .option('admin-token', ADMIN_TOKEN_OPTION)
          .option('admin-token-file', ADMIN_TOKEN_FILE_OPTION)
          .option('http-allowed-host', HTTP_ALLOWED_HOST_OPTION)
          .option('log-format', LOG_FORMAT_OPTION)
          .option('replication', { choices: ['group', 'etcd'] as const, default: 'group' as const, describe: 'how writes are replicated: group (the primary/backup protocol of docs/design.md: writes go between the nodes, etcd keeps only the configuration) or etcd (the earlier engine: every write is a txn on etcd\'s log). A cluster runs one engine, which etcd keeps' })
          .option('reseed', { type: 'boolean', default: false, describe: 'with --replication group, when every member of the group is lost (killed without a data dir): start a new group with this node alone, at the next configuration version. What only they held is lost; tokens still rise. Refused while a member is live in etcd; never use it while a member may be running cut off from etcd' })
          .option('data-dir', { type: 'string', describe: 'with --replication group: keep this node\'s log here; a restart takes its earlier run\'s place, so a group whose every member is killed loses nothing it acknowledged' })
          .option('fsync', { choices: FSYNC_MODES, default: 'batch' as FsyncMode, describe: 'with --data-dir: always (each write), batch (one per batch), off (survives a process crash, not a machine\'s)' })
          .option('min-secondaries', { type: 'number', default: 0, describe: 'with --replication group: the primary takes writes only while the configuration holds at least this many secondaries, so that no write is acknowledged by one node alone (1 in a group of 3: writes stop, rather than go on unreplicated, after two nodes fail)' })
          .check((a) => {
            etcdAccessOf(a);
            checkAdmin(a);
            checkLimitFlags(a);
            if (a.reseed && a.replication !== 'group') throw new Error('--reseed goes with --replication group');
            if (!Number.isInteger(a['min-secondaries']) || a['min-secondaries'] < 0 || a['min-secondaries'] > 98) throw new Error('--min-secondaries must be a whole number from 0 to 98');
            if (a['min-secondaries'] > 0 && a.replication !== 'group') throw new Error('--min-secondaries goes with --replication group: on --replication etcd every write is in etcd\'s quorum');
            if (a['data-dir'] !== undefined && a.replication !== 'group') throw new Error('--data-dir goes with --replication group: with --replication etcd, the log is etcd\'s');
            if (a['data-dir'] === '') throw new Error('--data-dir needs a directory');
            if (!Number.isInteger(a['node-ttl']) || a['node-ttl'] < 2 || a['node-ttl'] > 600) throw new Error('--node-ttl must be a whole number of seconds from 2 to 600');
            if ((a['tls-cert'] === undefined) !== (a['tls-key'] === undefined)) throw new Error('--tls-cert and --tls-key go together');
            if (a['tls-ca'] !== undefined && a['tls-cert'] === undefined) throw new Error('--tls-ca goes with --tls-cert and --tls-key');
            if (a['tls-cert'] !== undefined && a['tls-ca'] === undefined) throw new Error('--tls-cert needs --tls-ca: node links are mutual TLS, and each node checks its peers\' certificates against the CA that signed them (for one self-signed certificate, that certificate)');
            if (!NODE_NAME.test(a.name)) throw new Error('--name is 1 to 64 letters, digits, _ . or -, starting with a letter or digit');
            if (!CLUSTER_NAME.test(a.cluster)) throw new Error('--cluster is 1 to 64 letters, digits, _ . or -');
            if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error('--port must be 0 or a port number up to 65535');
            if (a['first-token'] !== undefined && (!Number.isSafeInteger(a['first-token']) || a['first-token'] < 1)) throw new Error('--first-token must be a positive whole number');
            if (a['first-token'] !== undefined && a.replication !== 'etcd') throw new Error('--first-token goes with --replication etcd: the group protocol\'s tokens come from its configuration version, from 1');
            checkListenToken(authToken(a), a.host, a.insecure);
            return true;
          }),
      async (a) => {
        const { runNode } = await import('../host/process/node-main.js');
        process.exitCode = await runNode({ etcd: etcdAccessOf(a), cluster: a.cluster, name: a.name, host: a.host, port: a.port, quiet: a.quiet, authToken: authToken(a), limits: limitsOf(a), firstToken: a['first-token'], nodeTtlS: a['node-ttl'],
          tls: a['tls-cert'] === undefined || a['tls-key'] === undefined ? null : { cert: readPem(a['tls-cert'], '--tls-cert'), key: readPem(a['tls-key'], '--tls-key'), ca: a['tls-ca'] === undefined ? null : readPem(a['tls-ca'], '--tls-ca') },
          clusterSecret: a['cluster-secret-file'] === undefined ? null : clusterSecretFile(a['cluster-secret-file']),
          admin: adminOf(a), logFormat: a['log-format'], replication: a.replication, reseed: a.reseed, dataDir: a['data-dir'] ?? null, fsync: a.fsync, minSecondaries: a['min-secondaries'] });
        exitSoon();
      },
    )
    .command(
      'status',
      'print a cluster on etcd: each node\'s name, address, role, applied seq and liveness, and who leads',
      (y) =>
        y
          .option('etcd', ETCD_OPTION)
          .option('cluster', CLUSTER_OPTION)
          .options(ETCD_ACCESS_OPTIONS)
          .option('json', { type: 'boolean', default: false, describe: 'print it as one JSON object' })
          .check(checkEtcdCluster),
      async (a) => {
        const { clusterStatus, formatStatus } = await import('../status.js');
        try {
          const s = await clusterStatus(etcdAccessOf(a), a.cluster);
          process.stdout.write(`${a.json ? JSON.stringify(s) : formatStatus(s)}\n`);
          process.exitCode = 0;
        } catch (err) {
          process.stderr.write(`dlock status: cannot read the cluster from etcd at ${describeEtcd(etcdAccessOf(a))}: ${etcdErrorText(etcdAccessOf(a), err as Error)}\n`);
          process.exitCode = 2;
        }
      },
    )
    .command(
      'tui',
      'watch a cluster on etcd in the VS Code-style view: each node\'s state, lock map and log (the nodes keep running when it quits)',
      (y) =>
        y
          .option('etcd', ETCD_OPTION)
          .option('cluster', CLUSTER_OPTION)
          .options(ETCD_ACCESS_OPTIONS)
          .option('auth-token', { type: 'string', describe: 'the clients\' token: the terminal sends it as a client (default: $DLOCK_AUTH_TOKEN)' })
          .option('cluster-secret-file', { type: 'string', describe: 'views are asked with the nodes\' cluster secret from this file (default: the nodes\' --admin-token if given, else the secret the cluster keeps in etcd)' })
          .option('admin-token', { type: 'string', describe: 'views are asked with the nodes\' admin token (default: $DLOCK_ADMIN_TOKEN)' })
          .option('auth-token-file', AUTH_TOKEN_FILE_OPTION)
          .option('admin-token-file', ADMIN_TOKEN_FILE_OPTION)
          .option('tls-ca', { type: 'string', describe: 'the nodes run with --tls-cert: the CA that signed their certificates (PEM file)' })
          .option('tls-cert', { type: 'string', describe: 'with --tls-ca: this observer\'s certificate, signed by that CA (node links are mutual TLS); needs --tls-key' })
          .option('tls-key', { type: 'string', describe: 'with --tls-cert: its private key (PEM file)' })
          .check((a) => {
            checkTokenFlags(a);
            checkEtcdCluster(a);
            if ((a['tls-cert'] === undefined) !== (a['tls-key'] === undefined)) throw new Error('--tls-cert and --tls-key go together');
            if (a['tls-cert'] !== undefined && a['tls-ca'] === undefined) throw new Error('--tls-cert needs --tls-ca: the CA that signed the nodes\' certificates');
            if (!process.stdout.isTTY) throw new Error('dlock tui needs a terminal (for a plain listing: dlock status)');
            return true;
          }),
      async (a) => {
        const token = authToken(a);
        const ca = a['tls-ca'] === undefined ? null : readPem(a['tls-ca'], '--tls-ca');
        const own = a['tls-cert'] === undefined || a['tls-key'] === undefined ? {} : { cert: readPem(a['tls-cert'], '--tls-cert'), key: readPem(a['tls-key'], '--tls-key') };
        const secret = a['cluster-secret-file'] !== undefined ? clusterSecretFile(a['cluster-secret-file']) : adminTokenOf(a);
        process.exitCode = await (await screens()).attach({ etcd: etcdAccessOf(a), cluster: a.cluster, observer: { secret, tls: ca === null ? null : { ca, ...own } } }, { authToken: token, tls: ca === null ? null : { cert: ca } });
      },
    )
    .command(
      'client [request..]',
      'the client: one request and exit (a script\'s), or interactive (reads requests from stdin when piped)',
      (y) =>
        clientConnectionOptions(y)
          .positional('request', { type: 'string', array: true, describe: 'one request, e.g. "check lock01": print the reply and exit 0 (success), 1 (Failed, Timeout, Stale) or 2 (Error, or no node)' })
          .option('json', { type: 'boolean', default: false, describe: 'print each reply as a JSON object' })
          .check((a) => {
            checkClientConnection(a);
            return true;
          }),
      async (a) => {
        const tls = clientTls(a);
        const at = await clientTarget(a, 'client');
        const conn = { host: at.host, port: at.port, authToken: authToken(a), tls };
        const words = (a.request ?? []).map(String);
        if (words.length > 0) {
          const { oneShot } = await import('../client/oneshot.js');
          process.exitCode = await oneShot({ ...conn, words, json: a.json });
        } else {
          process.exitCode = await repl({ ...conn, json: a.json });
        }
      },
    )
    .command(
      'admin <action> [lock]',
      'the admin API from the shell: dlock admin locks [--prefix P] | clients | revoke LOCK | health; at --http-port, or found in etcd (--etcd)',
      (y) =>
        y
          .positional('action', { choices: ['locks', 'clients', 'revoke', 'health'] as const, describe: 'what to do' })
          .positional('lock', { type: 'string', describe: 'with revoke: the lock to force-release' })
          .option('http-port', { type: 'number', default: 9080, describe: 'the admin API\'s port (dlock up --http-port)' })
          .option('http-host', { type: 'string', default: '127.0.0.1' })
          .option('etcd', { type: 'string', describe: 'find the admin API in etcd (its client URLs or HOST:PORT, comma-separated) instead of --http-port: the one the leader advertises (dlock node --http-port), else another\'s (default: $DLOCK_ETCD when --http-port is not given)' })
          .option('cluster', CLUSTER_OPTION)
          .options(ETCD_ACCESS_OPTIONS)
          .option('admin-token', { type: 'string', describe: 'default: $DLOCK_ADMIN_TOKEN' })
          .option('admin-token-file', ADMIN_TOKEN_FILE_OPTION)
          .option('prefix', { type: 'string', default: '', describe: 'with locks: only names starting with this' })
          .option('limit', { type: 'number', default: 1000, describe: 'with locks, clients: at most this many' })
          .option('json', { type: 'boolean', default: false, describe: 'print the API\'s JSON as is' })
          .check((a) => {
            checkTokenFlags(a);
            if (a.action === 'revoke' && (a.lock === undefined || a.lock === '')) throw new Error('revoke needs the lock: dlock admin revoke LOCK');
            if (!Number.isInteger(a['http-port']) || a['http-port'] < 1 || a['http-port'] > 65535) throw new Error('--http-port must be a port number from 1 to 65535');
            const etcd = adminEtcd(a);
            if (etcd !== undefined) {
              if (cliWords.some((w) => w === '--http-port' || w.startsWith('--http-port='))) throw new Error('--etcd and --http-port: give one or the other');
              etcdAccessOf({ ...a, etcd });
            } else checkEtcdFlagsNeedEtcd(a);
            return true;
          }),
      async (a) => {
        const { adminCommand } = await import('../admin/admin-command.js');
        const etcd = adminEtcd(a);
        const at = etcd === undefined ? { host: a['http-host'], port: a['http-port'] } : ((await nodesFromEtcd({ ...a, etcd }, 'admin', 'admin'))[0] as { host: string; port: number });
        process.exitCode = await adminCommand({ action: a.action as 'locks' | 'clients' | 'revoke' | 'health', lock: a.lock ?? '', host: at.host, port: at.port, token: adminTokenOf(a), prefix: a.prefix, limit: a.limit, json: a.json });
      },
    )
    .command(
      'lock <names..>',
      'hold a lock while a command runs: dlock lock NAME… [--shared | --limit N] [--ttl MS] [--timeout MS] [--value V] -- COMMAND [ARGS…]',
      (y) =>
        clientConnectionOptions(y)
          .positional('names', { type: 'string', array: true, describe: 'the lock; several names (up to 16): all of them at once, all or nothing, one token (LP-22)' })
          .option('ttl', { type: 'number', default: 10_000, describe: 'lease length, ms; renewed every third of it while the command runs' })
          .option('timeout', { type: 'number', describe: 'ms to wait for the lock (default: as long as it takes); exit 1 if not acquired' })
          .option('grace', { type: 'number', default: 5000, describe: 'if the lock is lost: ms between SIGTERM and SIGKILL to the command' })
          .option('value', { type: 'string', describe: 'the lock shows this value while the command holds it (check, LP-18): leader election for a command, e.g. --value 10.0.0.5:8080' })
          .option('shared', { type: 'boolean', default: false, describe: 'hold the lock shared (LP-20): commands holding it shared run at once; one holding it alone waits for them, and they for it' })
          .option('limit', { type: 'number', describe: 'hold one of at most N holds of the lock (LP-21): at most N such commands at once; each names the same N' })
          .option('nodes', { type: 'string', describe: 'the cluster\'s other nodes, HOST:PORT comma-separated: reconnect there if the first is lost' })
          .check((a) => {
            checkClientConnection(a);
            const command = (a['--'] as unknown[] | undefined) ?? [];
            if (command.length === 0) throw new Error('name the command to run after --, e.g. dlock lock jobs -- ./run.sh');
            if (!Number.isInteger(a.ttl) || a.ttl < 1 || a.ttl > 86_400_000) throw new Error('--ttl must be a whole number of ms from 1 to 86400000');
            if (a.timeout !== undefined && (!Number.isInteger(a.timeout) || a.timeout < 0 || a.timeout > 86_400_000)) throw new Error('--timeout must be a whole number of ms from 0 to 86400000');
            if (!Number.isInteger(a.grace) || a.grace < 0) throw new Error('--grace must be a whole number of ms');
            if (a.value !== undefined) encodeValue(a.value); // throws RangeError naming the rule
            const kind = lockFlagsError({ locks: (a.names ?? []).map(String), shared: a.shared, limit: a.limit, value: a.value });
            if (kind !== null) throw new Error(kind);
            if (a.nodes !== undefined) nodeList(a.nodes);
            return true;
          }),
      async (a) => {
        const { lockCommand } = await import('../client/lock-command.js');
        const tls = clientTls(a);
        const etcd = clientEtcd(a);
        // From etcd: the leader first, the others to reconnect to if it is lost.
        const found = etcd === undefined ? null : await nodesFromEtcd({ ...a, etcd }, 'lock');
        process.exitCode = await lockCommand({
          host: found?.[0]?.host ?? a.host,
          port: found?.[0]?.port ?? a.port,
          nodes: found !== null ? found.slice(1) : a.nodes === undefined ? [] : nodeList(a.nodes),
          authToken: authToken(a),
          tls,
          locks: (a.names ?? []).map(String),
          shared: a.shared,
          ...(a.limit === undefined ? {} : { limit: a.limit }),
          ttl: a.ttl,
          timeout: a.timeout,
          graceMs: a.grace,
          ...(a.value === undefined ? {} : { value: a.value }),
          command: ((a['--'] as unknown[] | undefined) ?? []).map(String),
        });
      },
    )
    .command(
      'watch <name>',
      'print a lock\'s state now, then each new one as it is committed (LP-19): dlock watch NAME [--count N] [--json]',
      (y) =>
        clientConnectionOptions(y)
          .positional('name', { type: 'string', describe: 'the lock' })
          .option('count', { type: 'number', describe: 'exit 0 after this many states (the first is the state now); default: until Ctrl+C' })
          .option('json', { type: 'boolean', default: false, describe: 'print each state as a JSON object' })
          .check((a) => {
            checkClientConnection(a);
            if (a.count !== undefined && (!Number.isInteger(a.count) || a.count < 1)) throw new Error('--count must be a whole number of at least 1');
            return true;
          }),
      async (a) => {
        const { watchCommand } = await import('../client/watch-command.js');
        const at = await clientTarget(a, 'watch');
        process.exitCode = await watchCommand({ host: at.host, port: at.port, authToken: authToken(a), tls: clientTls(a), lock: a.name as string, json: a.json, count: a.count });
      },
    )
    .demandCommand(1, `name a command: ${COMMANDS.join(', ')}`)
    .parserConfiguration({ 'populate--': true })
    .strict()
    // A usage error is its one line and where to read more, not the whole help.
    .fail((msg, err) => {
      // Help for the command named, if one is (a flag's value such as x.json is not one), else for dlock.
      const command = cliWords.find((w) => (COMMANDS as readonly string[]).includes(w));
      process.stderr.write(`dlock: ${msg ?? err?.message ?? 'bad usage'}\nRun 'dlock ${command === undefined ? '' : `${command} `}--help' for usage.\n`);
      process.exit(2);
    })
    .help()
    .alias('h', 'help')
    .version(ownVersion())
    .parseAsync();
}
