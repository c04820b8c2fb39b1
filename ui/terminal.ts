/**
 * The TUI's TERMINAL: a dlock client attached to one node, typed into as a
 * shell is.
 *
 * - The input line edits as readline's does (ui/line-editor.ts).
 * - Replies are wrapped to the panel, never cut.
 * - Attaching to another node closes this terminal's connection, which
 *   ends its session and releases its session locks [LP-8]: when there is
 *   a connection, attach() asks first and says what will be lost; `y`
 *   confirms, any other key keeps the connection.
 * - Ctrl+C with a request waiting cancels it the one way the protocol
 *   allows, by closing the connection; otherwise it clears the line, and a
 *   second one within 2 s quits.
 *
 * Threading: the main thread. Ordering: output lines are kept in the order
 * they were written; replies come in request order (one connection).
 */
import type blessed from 'blessed';
import { connect, type DlockClient } from '../src/client/client.js';
import { timestamp } from '../src/text.js';
import { plural } from '../src/text.js';
import { LineEditor } from './line-editor.js';
import type { SourceNode } from './source.js';
import { wrap } from './text.js';

export const PROMPT = 'distributeLock:> ';
const KEEP_LINES = 500;
const QUIT_WINDOW_MS = 2000;

/** What the terminal needs to connect to a node as a client. */
export interface TermOptions {
  authToken: string | null;
  tls: { cert: string } | null;
}

export interface TerminalHost {
  /** The nodes now, to connect to. */
  nodes(): SourceNode[];
  /** The session locks (ttl-less) that client `id` holds on `node`, as its lock map last showed them. */
  sessionLocks(node: string, id: number): string[];
  /** Something to draw changed. */
  changed(): void;
  /** Ctrl+C twice. */
  quit(): void;
}

export class Terminal {
  /** The node it is (or will be) attached to; 'leader' follows the leader. */
  node = 'leader';
  private client: DlockClient | null = null;
  readonly editor = new LineEditor();
  private readonly lines: string[] = [];
  private pending = 0;
  private interruptAt = -Infinity;
  /** An attach waiting for `y`: the node, and the question shown. */
  private confirming: { node: string; question: string } | null = null;

  constructor(
    private readonly host: TerminalHost,
    private readonly opts: TermOptions,
  ) {}

  write(line: string): void {
    this.lines.push(line);
    if (this.lines.length > KEEP_LINES) this.lines.splice(0, this.lines.length - KEEP_LINES);
    this.host.changed();
  }

  /** The question the status bar shows while an attach waits for `y`. */
  question(): string | null {
    return this.confirming?.question ?? null;
  }

  /**
   * Attach to `node`. With a connection open, it asks first: closing it
   * ends the session (and its session locks) on the node it is on now.
   */
  attach(node: string): void {
    const c = this.client;
    if (c === null) {
      void this.connectTo(node);
      return;
    }
    if (node === this.node) {
      this.write(`(already attached to ${node} as client ${c.id})`);
      return;
    }
    const held = this.host.sessionLocks(this.node, c.id);
    const losing = held.length === 0 ? 'it holds no session locks' : `its ${plural(held.length, 'session lock')} (${held.slice(0, 5).join(', ')}${held.length > 5 ? ', …' : ''}) will be released`;
    const waiting = this.pending > 0 ? `; its ${plural(this.pending, 'waiting request')} will be cancelled` : '';
    this.write(`Attaching to ${node} closes this terminal's connection to ${this.node} (client ${c.id}): its session ends and ${losing}${waiting}. Leases (ttl=) stay.`);
    this.write('Press y to attach, any other key to stay.');
    this.confirming = { node, question: `Attach to ${node}? y: yes (ends this session) · any other key: no` };
  }

  /** A key while an attach waits for `y`: true if it was taken (every key is). */
  answer(ch: string | undefined): boolean {
    const c = this.confirming;
    if (c === null) return false;
    this.confirming = null;
    if (ch === 'y' || ch === 'Y') void this.connectTo(c.node);
    else this.write(`(stayed on ${this.node})`);
    return true;
  }

  /**
   * A key while the TERMINAL has the focus: true if the terminal used it
   * (text, editing keys, Enter, Ctrl+C); false leaves it to the keymap.
   */
  key(ch: string | undefined, key: blessed.Widgets.Events.IKeyEventArg): boolean {
    const full = key.full;
    if (full === 'C-c') {
      this.interrupt();
      return true;
    }
    if (key.name === 'enter') {
      void this.submit(this.editor.take());
      return true;
    }
    if (full === 'return') return true; // blessed sends both for one Enter
    if (isText(ch, key)) {
      this.editor.insert(ch as string);
      return true;
    }
    return this.editor.key(full);
  }

  /**
   * The panel's rows: output wrapped to `width`, newest last, and the
   * prompt row in three parts, the character under the cursor in the
   * middle (the renderer draws it in inverse).
   */
  rows(width: number, height: number): { body: string[]; prompt: { before: string; at: string; after: string } } {
    const body: string[] = [];
    for (let i = this.lines.length - 1; i >= 0 && body.length < height - 1; i--) body.unshift(...wrap(this.lines[i] as string, width, height));
    const view = this.editor.view(Math.max(1, width - PROMPT.length - 1));
    const t = view.text;
    return {
      body: body.slice(-(height - 1)),
      prompt: { before: PROMPT + t.slice(0, view.cursor), at: t[view.cursor] ?? ' ', after: t.slice(view.cursor + 1) },
    };
  }

  destroy(): void {
    this.client?.destroy();
    this.client = null;
  }

  private async connectTo(node: string): Promise<void> {
    this.client?.destroy();
    this.client = null;
    this.node = node;
    // `leader` means whichever node leads now (after failover, a promoted follower).
    const nodes = this.host.nodes();
    const info = nodes.find((n) => n.name === node) ?? (node === 'leader' ? nodes.find((n) => n.role === 'leader') : undefined);
    if (info === undefined) {
      this.write(`(no node ${node})`);
      return;
    }
    try {
      const c = await connect({ host: info.host, port: info.port, authToken: this.opts.authToken, tls: this.opts.tls === null ? null : { ca: this.opts.tls.cert } });
      this.client = c;
      this.write(`connected to ${c.nodeLabel} at ${info.host}:${info.port}, client_id: ${c.id}`);
      c.onClose(() => {
        if (this.client === c) {
          this.client = null;
          this.write('(connection closed; Enter reconnects)');
        }
      });
    } catch (err) {
      this.write(`(cannot connect to ${node}: ${(err as Error).message})`);
    }
  }

  private async submit(line: string): Promise<void> {
    this.host.changed();
    if (line.trim() === '') return;
    if (this.client === null) await this.connectTo(this.node);
    const c = this.client;
    if (c === null) return;
    this.write(`${timestamp(Date.now(), false)} Request: ${line}`);
    this.pending++;
    try {
      const reply = await c.raw(line);
      this.write(`${timestamp(Date.now(), false)} Response: ${reply}`);
    } catch (err) {
      this.write(`(${(err as Error).message})`);
    } finally {
      this.pending--;
    }
  }

  private interrupt(): void {
    const c = this.client;
    if (this.pending > 0 && c !== null) {
      this.client = null;
      c.destroy();
      this.write("^C: cancelled the waiting request by closing this terminal's connection (its session locks are released); Enter reconnects");
      return;
    }
    const now = performance.now(); // the double-press window is an interval
    if (now - this.interruptAt < QUIT_WINDOW_MS) {
      this.host.quit();
      return;
    }
    this.interruptAt = now;
    this.editor.clear();
    this.write('^C (press Ctrl+C again to stop the cluster and quit; q quits from the other parts)');
  }
}

/** A key that types a character (not Tab, Enter, Esc, or a chord). */
export const isText = (ch: string | undefined, key: blessed.Widgets.Events.IKeyEventArg): boolean =>
  ch !== undefined && ch.length > 0 && !key.ctrl && !key.meta && ch >= ' ' && ch !== '\x7f' && key.name !== 'tab' && key.name !== 'enter' && key.name !== 'return' && key.name !== 'escape';
