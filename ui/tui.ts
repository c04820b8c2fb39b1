/**
 * `dlock up` in a terminal: a VS Code-style view of the cluster (issue 3).
 *
 * A view only: it subscribes to node events (log batches arrive already
 * batched every 50 ms by the workers), polls stats and lock maps over the
 * control plane twice a second, and renders at most every RENDER_MS. It
 * never sits in the request path: client TCP goes straight to the workers.
 *
 * Logs are drawn from capped buffers (ui/model.ts), only the lines that fit,
 * into plain boxes: blessed's log widget re-parses its whole content on
 * every line (blessed issue 338), which a busy node would turn into a
 * render storm.
 *
 * Keys go through one dispatcher: the palette when open, else the terminal
 * input for text keys when it has the focus, else the keymap (ui/keymap.ts),
 * which also writes the status bar hints and fills the palette.
 */
import blessed from 'blessed';
import { connect, type DlockClient } from '../src/client/client.js';
import type { NodeEvent } from '../src/control.js';
import type { UpOptions } from '../src/up.js';
import type { LogKind, LogLine } from '../src/node/node-log.js';
import { ClusterSource } from './source-cluster.js';
import type { ViewSource } from './source.js';
import { timestamp } from '../src/headless.js';
import { plural } from '../src/text.js';
import { Keymap, type Action } from './keymap.js';
import { layout, PARTS, type Focus, type Layout, type Mode, type Rect } from './layout.js';
import { ClusterModel, isLive, sparkline, type NodeView } from './model.js';
import { clip, wrap } from './text.js';

const RENDER_MS = 100;
const POLL_MS = 500;
const PROMPT = 'distributeLock:> ';

/** The same options as headless `dlock up`. */
export type TuiOptions = UpOptions;

/** What the terminal needs to connect to a node as a client. */
export interface TermOptions {
  authToken: string | null;
  tls: { cert: string } | null;
}

/** `dlock up` in a terminal: the one-process cluster, started and owned by the view. */
export function runTui(opts: TuiOptions): Promise<number> {
  return runView(new ClusterSource(opts), { authToken: opts.authToken, tls: opts.tls === null ? null : { cert: opts.tls.cert } }, 'dlock up');
}

const KIND_COLOR: Record<LogKind, string> = {
  info: 'gray',
  conn: 'cyan',
  req: 'white',
  reply: 'green',
  repl: 'magenta',
  warn: 'yellow',
  error: 'red',
};

const STATE_ICON: Record<string, string> = { up: '{green-fg}●{/green-fg}', starting: '{yellow-fg}◌{/yellow-fg}', restarting: '{yellow-fg}↻{/yellow-fg}', promoted: '{cyan-fg}★{/cyan-fg}', down: '{red-fg}✖{/red-fg}', gone: '{red-fg}⊘{/red-fg}' };

const esc = (s: string): string => blessed.escape(s);
const hhmmss = (t: number): string => timestamp(t).slice(11, 23);

function place(el: blessed.Widgets.BlessedElement, r: Rect | null): void {
  if (r === null || r.width < 2 || r.height < 1) {
    el.hide();
    return;
  }
  el.show();
  el.left = r.left;
  el.top = r.top;
  el.width = r.width;
  el.height = r.height;
}

interface NodeWidgets {
  log: blessed.Widgets.BoxElement;
  locks: blessed.Widgets.BoxElement;
}

/**
 * The view over a source (ui/source.ts): the one-process cluster, or nodes
 * on etcd (`dlock tui --etcd`). `command` names it in error messages.
 */
export async function runView(source: ViewSource, opts: TermOptions, command: string): Promise<number> {
  // Draw box lines as UTF-8 rather than ACS: readable in any UTF-8 terminal
  // and in `tmux capture-pane`.
  process.env['NCURSES_NO_UTF8_ACS'] ??= '1';
  const screen = blessed.screen({ smartCSR: true, fullUnicode: true, title: 'dlock', autoPadding: false, warnings: false });
  const model = new ClusterModel();
  const keymap = new Keymap();
  const focus: Focus = { part: 'editor', node: 'leader' };
  const mode: { zoom: boolean; panelTab: 'terminal' | 'output' } = { zoom: false, panelTab: 'terminal' };
  let current: Layout | null = null;

  // wrap: false — lines are clipped to the pane here, never re-flowed by blessed.
  const box = (o: blessed.Widgets.BoxOptions): blessed.Widgets.BoxElement => blessed.box({ parent: screen, tags: true, wrap: false, ...o } as blessed.Widgets.BoxOptions);
  const sidebar = box({ border: { type: 'line' }, label: ' CLUSTER ', clickable: true });
  const tabs = box({ clickable: true, style: { bg: 'black' } });
  const panel = box({ border: { type: 'line' }, clickable: true });
  const status = box({ style: { bg: 'blue', fg: 'white' } });
  const palette = box({ border: { type: 'line' }, label: ' Command Palette ', hidden: true, style: { bg: 'black', border: { fg: 'cyan' } } });
  const splash = box({ top: 'center', left: 'center', width: 40, height: 3, border: { type: 'line' }, content: source.starting });
  const widgets = new Map<string, NodeWidgets>();

  // ---- the embedded terminal (a dlock client attached to one node) ----
  /** `pending`: requests sent and not yet answered; `interruptAt`: when Ctrl+C last cleared the line (a second one soon after quits). */
  const term = { node: 'leader', client: null as DlockClient | null, input: '', lines: [] as string[], history: [] as string[], hist: -1, pending: 0, interruptAt: 0 };
  const termOut = (line: string): void => {
    term.lines.push(line);
    if (term.lines.length > 500) term.lines.splice(0, term.lines.length - 500);
    schedule();
  };

  let started = false;
  const attach = async (node: string): Promise<void> => {
    term.client?.destroy();
    term.client = null;
    term.node = node;
    // `leader` means whichever node leads now (after failover, a promoted follower).
    const nodes = source.nodes();
    const info = nodes.find((n) => n.name === node) ?? (node === 'leader' ? nodes.find((n) => n.role === 'leader') : undefined);
    if (info === undefined) {
      termOut(`(no node ${node})`);
      return;
    }
    try {
      const c = await connect({ host: info.host, port: info.port, authToken: opts.authToken, tls: opts.tls === null ? null : { ca: opts.tls.cert } });
      term.client = c;
      termOut(`connected to ${c.nodeLabel} at ${info.host}:${info.port}, client_id: ${c.id}`);
      c.onClose(() => {
        if (term.client === c) {
          term.client = null;
          termOut('(connection closed; Enter reconnects)');
        }
      });
    } catch (err) {
      termOut(`(cannot connect to ${node}: ${(err as Error).message})`);
    }
  };

  const submit = async (): Promise<void> => {
    const line = term.input;
    term.input = '';
    term.hist = -1;
    if (line.trim() === '') {
      schedule();
      return;
    }
    term.history.push(line);
    if (term.client === null) await attach(term.node);
    const c = term.client;
    if (c === null) return;
    termOut(`${timestamp(Date.now(), false)} Request: ${line}`);
    term.pending++;
    try {
      const reply = await c.raw(line);
      termOut(`${timestamp(Date.now(), false)} Response: ${reply}`);
    } catch (err) {
      termOut(`(${(err as Error).message})`);
    } finally {
      term.pending--;
    }
  };

  /**
   * Ctrl+C in the TERMINAL, as in a shell (issue 12 §6): a VS Code user
   * presses it to cancel a command, not to stop the cluster. With a request
   * waiting (an acquire), it cancels it the one way the protocol allows:
   * closing this terminal's connection, which ends its session [LP-8], as
   * Ctrl+C on `nc` does. Otherwise it clears the line; a second Ctrl+C
   * within 2 s quits.
   */
  const interruptTerminal = (): void => {
    const c = term.client;
    if (term.pending > 0 && c !== null) {
      term.client = null;
      c.destroy();
      termOut('^C: cancelled the waiting request by closing this terminal\'s connection (its session locks are released); Enter reconnects');
      return;
    }
    const now = Date.now();
    if (now - term.interruptAt < 2000) {
      quit();
      return;
    }
    term.interruptAt = now;
    term.input = '';
    term.hist = -1;
    termOut('^C (press Ctrl+C again to stop the cluster and quit; q quits from the other parts)');
  };

  // ---- rendering ----
  let scheduled: NodeJS.Timeout | null = null;
  function schedule(): void {
    if (scheduled === null) scheduled = setTimeout(render, RENDER_MS);
  }

  const nodeWidgets = (name: string): NodeWidgets => {
    let w = widgets.get(name);
    if (w === undefined) {
      const log = box({ border: { type: 'line' }, clickable: true });
      const locks = box({ border: { type: 'line' }, clickable: true });
      const onClick = (): void => {
        focus.part = 'editor';
        focus.node = name;
        schedule();
      };
      log.on('click', onClick);
      locks.on('click', onClick);
      log.on('wheelup', () => scroll(name, 3));
      log.on('wheeldown', () => scroll(name, -3));
      w = { log, locks };
      widgets.set(name, w);
      palette.setFront();
    }
    return w;
  };

  const borderColor = (active: boolean): string => (active ? 'cyan' : 'gray');
  const setBorder = (el: blessed.Widgets.BoxElement, active: boolean): void => {
    (el.style as { border?: { fg?: string } }).border = { fg: borderColor(active) };
  };

  function logLine(l: LogLine, width: number): string {
    const text = clip(`${hhmmss(l.t)} ${l.text}`, width);
    return `{${KIND_COLOR[l.kind]}-fg}${esc(text)}{/}`;
  }

  /**
   * The newest log lines that fit `rows` rows of `width`, each wrapped
   * (continuations indented) so narrow panes still show whole lines. Only the
   * lines that can be visible are touched.
   */
  function logRows(lines: LogLine[], width: number, rows: number): string[] {
    const out: string[] = [];
    for (let i = lines.length - 1; i >= 0 && out.length < rows; i--) {
      const l = lines[i] as LogLine;
      const text = `${hhmmss(l.t)} ${l.text}`;
      const parts = wrap(text, width, rows);
      const color = KIND_COLOR[l.kind];
      out.unshift(...parts.map((p) => `{${color}-fg}${esc(p)}{/}`));
    }
    return out.slice(-rows);
  }

  function renderNode(v: NodeView, pane: { log: Rect; locks: Rect }): void {
    const w = nodeWidgets(v.name);
    place(w.log, pane.log);
    place(w.locks, pane.locks);
    const active = focus.part === 'editor' && focus.node === v.name;
    setBorder(w.log, active);
    setBorder(w.locks, active);
    const inner = pane.log.width - 2;
    const rows = pane.log.height - 2;
    const paused = v.paused ? ` paused ${v.back} back` : '';
    // Clipped to the box: a label longer than its top border breaks the box
    // (a promoted follower's `follower-1 (leader)` did in a narrow pane).
    // The icon and the spaces around it take 4 columns; the corners and a rule before the right one, 4.
    const title = clip(`${model.label(v.name)} ${v.address ?? ''} · log`, Math.max(1, pane.log.width - 8 - paused.length));
    w.log.setLabel(` ${STATE_ICON[v.state] ?? ''} ${esc(title)}${paused === '' ? '' : `{yellow-fg}${esc(paused)}{/yellow-fg}`} `);
    w.log.setContent(logRows(v.log.window(rows, v.back), inner, rows).join('\n'));
    const lw = pane.locks.width - 2;
    // Owner and token columns as wide as the widest shown (tokens seeded from
    // the clock have 16 digits), ttl 7 ("session"), then waiters; the lock
    // name takes the rest. A token that still does not fit keeps its last
    // digits (the ones that change), after an ellipsis.
    const shown = v.locks.slice(0, Math.max(0, pane.locks.height - 3));
    const ownW = Math.max(5, ...shown.map((r) => String(r.owner).length));
    let tokW = Math.max(5, ...shown.map((r) => String(r.token).length));
    let nameW = lw - (ownW + tokW + 7 + 4 + 4);
    if (nameW < 6) {
      tokW = Math.max(7, tokW - (6 - nameW));
      nameW = 6;
    }
    const tok = (t: number): string => {
      const s = String(t);
      return s.length <= tokW ? s : `…${s.slice(s.length - tokW + 1)}`;
    };
    const head = `${'LOCK'.padEnd(nameW)} ${'OWNER'.padStart(ownW)} ${'TOKEN'.padStart(tokW)} ${'TTL'.padStart(7)} WAIT`;
    const rowsL = shown.map((r) => {
      const ttl = r.ttlLeft === null ? 'session' : `${(r.ttlLeft / 1000).toFixed(1)}s`;
      return esc(clip(`${clip(r.lock, nameW).padEnd(nameW)} ${String(r.owner).padStart(ownW)} ${tok(r.token).padStart(tokW)} ${ttl.padStart(7)} ${r.waiters.length === 0 ? '' : r.waiters.join(',')}`, lw));
    });
    const total = v.stats?.locks ?? v.locks.length;
    w.locks.setLabel(` ${esc(clip(`${model.label(v.name)} · lock map (${v.state === 'gone' ? 'gone' : total})`, Math.max(1, pane.locks.width - 6)))} `);
    w.locks.setContent([`{bold}${esc(clip(head, lw))}{/bold}`, ...rowsL].join('\n'));
  }

  function renderSidebar(l: Layout): void {
    place(sidebar, l.sidebar);
    if (l.sidebar === null) return;
    setBorder(sidebar, focus.part === 'explorer');
    const w = l.sidebar.width - 2;
    const out: string[] = [`{bold}▾ dlock{/bold} (${model.summary().total} nodes)`];
    for (const name of model.names()) {
      const v = model.node(name);
      const selected = name === focus.node;
      const lag = model.lag(name);
      // A promoted node is up; its star and its role say the rest.
      const nameLine = clip(`${model.label(name)} ${v.state === 'promoted' ? 'up' : v.state}`, w - 4);
      out.push(`${selected ? '{inverse}' : ''} ${STATE_ICON[v.state] ?? ''} ${esc(nameLine)}${selected ? '{/inverse}' : ''}`);
      out.push(`   ${esc(clip(v.address ?? '-', w - 3))}`);
      const s = v.stats;
      const narrow = w < 26;
      const parts = narrow ? [`${s?.clients ?? 0} cl`, `${s?.locks ?? 0} lk`] : [`clients ${s?.clients ?? 0}`, `locks ${s?.locks ?? 0}`];
      if (name !== model.leaderName()) parts.push(`lag ${lag ?? '-'}`);
      out.push(`   {gray-fg}${esc(clip(parts.join(' '), w - 3))}{/gray-fg}`);
    }
    sidebar.setContent(out.join('\n'));
  }

  function renderTabs(l: Layout): void {
    place(tabs, l.tabs);
    const items = ['ALL', ...model.names()];
    const active = mode.zoom ? focus.node : 'ALL';
    tabs.setContent(items.map((t) => (t === active ? `{black-fg}{white-bg} ${esc(t)} {/}` : ` ${esc(t)} `)).join('{gray-fg}│{/gray-fg}'));
  }

  function renderPanel(l: Layout): void {
    place(panel, l.panel);
    if (l.panel === null) return;
    setBorder(panel, focus.part === 'panel');
    const t = mode.panelTab;
    const tab = (name: string, on: boolean): string => (on ? `{bold}{underline}${name}{/underline}{/bold}` : `{gray-fg}${name}{/gray-fg}`);
    panel.setLabel(` ${tab(`TERMINAL (${term.node})`, t === 'terminal')}  ${tab('OUTPUT', t === 'output')} `);
    const w = l.panel.width - 2;
    const h = l.panel.height - 2;
    if (t === 'output') {
      panel.setContent(
        model.output
          .window(h)
          .map((x) => logLine(x, w))
          .join('\n'),
      );
      return;
    }
    const cursor = focus.part === 'panel' ? '{inverse} {/inverse}' : '';
    const prompt = `${esc(clip(PROMPT + term.input, w - 1))}${cursor}`;
    const body = term.lines.slice(-(h - 1)).map((x) => esc(clip(x, w)));
    panel.setContent([...body, prompt].join('\n'));
  }

  function renderStatus(l: Layout): void {
    place(status, l.status);
    const s = model.summary();
    // Narrow screens drop the leader's address and the sparkline before the hints.
    const wide = l.status.width >= 120;
    const lead = wide ? ` leader ${s.leader} │` : '';
    const spark = wide ? ` ${sparkline(model.opsHistory, 10)}` : '';
    const left = `${lead} ${s.up}/${s.total} up │ ${plural(s.clients, 'client')} │ ${plural(s.locks, 'lock')} │ ${model.opsPerSec} ops/s${spark} │ `;
    status.setContent(esc(clip(left + keymap.hints(focus.part, typing()), l.status.width)));
  }

  function renderPalette(l: Layout): void {
    if (!paletteState.open) {
      palette.hide();
      return;
    }
    const width = Math.min(70, l.cols - 4);
    const height = Math.min(16, l.rows - 4);
    place(palette, { left: Math.floor((l.cols - width) / 2), top: 1, width, height });
    palette.setFront();
    const matches = keymap.search(paletteState.query);
    if (paletteState.index >= matches.length) paletteState.index = Math.max(0, matches.length - 1);
    const inner = width - 2;
    const lines = [`{cyan-fg}>{/cyan-fg} ${esc(paletteState.query)}{inverse} {/inverse}`];
    const visible = height - 3;
    const start = Math.max(0, paletteState.index - visible + 1);
    matches.slice(start, start + visible).forEach((a, i) => {
      const keys = a.keys.length > 0 ? ` {gray-fg}${esc(a.keys.join(' '))}{/gray-fg}` : '';
      const text = `${esc(clip(a.title, inner - 12))}${keys}`;
      lines.push(start + i === paletteState.index ? `{inverse}${text}{/inverse}` : text);
    });
    if (matches.length === 0) lines.push('{gray-fg}no matching command{/gray-fg}');
    palette.setContent(lines.join('\n'));
  }

  function render(): void {
    if (scheduled !== null) clearTimeout(scheduled);
    scheduled = null;
    if (closed) return;
    const cols = screen.width as number;
    const rows = screen.height as number;
    const names = model.names();
    if (!names.includes(focus.node) && names.length > 0) focus.node = names[0] as string;
    const m: Mode = { nodes: names, zoom: mode.zoom, panelTab: mode.panelTab };
    const l = layout(cols, rows, focus, m);
    current = l;
    splash.hide();
    const shown = new Set(l.panes.map((p) => p.node));
    for (const [name, w] of widgets) {
      if (!shown.has(name)) {
        w.log.hide();
        w.locks.hide();
      }
    }
    for (const p of l.panes) renderNode(model.node(p.node), p);
    renderSidebar(l);
    renderTabs(l);
    renderPanel(l);
    renderStatus(l);
    renderPalette(l);
    screen.render();
  }

  // ---- actions ----
  const paletteState = { open: false, query: '', index: 0 };
  const nextPart = (step: number): void => {
    const avail = PARTS.filter((p) => (p === 'explorer' ? current?.sidebar !== null : p === 'panel' ? current?.panel !== null : true));
    const i = avail.indexOf(focus.part);
    focus.part = avail[(i + step + avail.length) % avail.length] ?? 'editor';
  };
  const moveNode = (step: number): void => {
    const names = model.names();
    const i = names.indexOf(focus.node);
    focus.node = names[(i + step + names.length) % names.length] ?? focus.node;
  };
  function scroll(name: string, lines: number): void {
    const v = model.node(name);
    const rows = Math.max(1, (current?.panes.find((p) => p.node === name)?.log.height ?? 10) - 2);
    v.back = Math.max(0, Math.min(v.log.length - rows, v.back + lines));
    v.paused = v.back > 0;
    schedule();
  }
  const follow = (name: string): void => {
    const v = model.node(name);
    v.paused = false;
    v.back = 0;
  };
  const togglePause = (name: string): void => {
    const v = model.node(name);
    if (v.paused) follow(name);
    else v.paused = true;
  };
  const paneRows = (): number => Math.max(1, (current?.panes.find((p) => p.node === focus.node)?.log.height ?? 10) - 2);

  let closed = false;
  let quitting: Promise<void> | null = null;
  let resolveExit: (code: number) => void = () => {};
  const exit = new Promise<number>((resolve) => {
    resolveExit = resolve;
  });
  const quit = (): void => {
    quitting ??= (async () => {
      clearInterval(poller);
      term.client?.destroy();
      model.note('info', 'shutting down');
      render();
      let code = 0;
      try {
        await source.close();
      } catch (err) {
        code = 1;
        process.stderr.write(`${command}: shutdown failed: ${(err as Error).message}\n`);
      }
      closed = true;
      screen.destroy();
      resolveExit(code);
    })();
  };

  const act = (a: Omit<Action, 'run'>, run: () => void): void => keymap.register({ ...a, run });
  act({ id: 'part.next', title: 'Focus next part', keys: ['tab'], scope: 'global', hint: 'next part' }, () => nextPart(1));
  act({ id: 'part.prev', title: 'Focus previous part', keys: ['S-tab'], scope: 'global' }, () => nextPart(-1));
  act({ id: 'palette', title: 'Show command palette', keys: ['C-p', 'f1'], scope: 'global', hint: 'palette' }, () => {
    Object.assign(paletteState, { open: true, query: '', index: 0 });
  });
  act({ id: 'quit', title: source.quitTitle, keys: ['q', 'C-c'], scope: 'global', hint: 'quit' }, quit);
  act({ id: 'editor.scroll-up', title: 'Scroll log up', keys: ['pageup', 'up'], scope: 'editor', hint: 'scroll' }, () => scroll(focus.node, paneRows()));
  act({ id: 'editor.scroll-down', title: 'Scroll log down', keys: ['pagedown', 'down'], scope: 'editor' }, () => scroll(focus.node, -paneRows()));
  act({ id: 'editor.node-prev', title: 'Previous node', keys: ['left'], scope: 'editor' }, () => moveNode(-1));
  act({ id: 'editor.node-next', title: 'Next node', keys: ['right'], scope: 'editor', hint: 'next node' }, () => moveNode(1));
  act({ id: 'editor.zoom', title: 'Toggle full-size node / all nodes', keys: ['enter', 'z'], scope: 'editor', hint: 'zoom' }, () => {
    mode.zoom = !mode.zoom;
  });
  act({ id: 'editor.pause', title: 'Pause / follow the focused log', keys: ['p'], scope: 'editor', hint: 'pause' }, () => togglePause(focus.node));
  act({ id: 'editor.clear', title: 'Clear the focused log', keys: ['c'], scope: 'editor' }, () => {
    model.node(focus.node).log.clear();
    follow(focus.node);
  });
  act({ id: 'explorer.up', title: 'Select previous node', keys: ['up'], scope: 'explorer', hint: 'select' }, () => moveNode(-1));
  act({ id: 'explorer.down', title: 'Select next node', keys: ['down'], scope: 'explorer' }, () => moveNode(1));
  act({ id: 'explorer.open', title: 'Open the selected node', keys: ['enter'], scope: 'explorer', hint: 'open' }, () => {
    mode.zoom = true;
    focus.part = 'editor';
  });
  act({ id: 'explorer.attach', title: 'Attach the terminal to the selected node', keys: ['t'], scope: 'explorer', hint: 'terminal here' }, () => {
    void attach(focus.node);
    mode.panelTab = 'terminal';
  });
  act({ id: 'explorer.kill', title: 'Kill the selected node (a follower restarts; the leader fails over)', keys: ['k'], scope: 'explorer', hint: 'kill' }, () => kill(focus.node));
  act({ id: 'explorer.restart', title: 'Restart the selected node (the leader hands over to a follower)', keys: ['r'], scope: 'explorer', hint: 'restart' }, () => restart(focus.node));
  act({ id: 'panel.switch', title: 'Switch panel: TERMINAL / OUTPUT', keys: ['C-o'], scope: 'panel', hint: 'terminal/output' }, () => {
    mode.panelTab = mode.panelTab === 'terminal' ? 'output' : 'terminal';
  });
  act({ id: 'view.all', title: 'View: all nodes side by side', keys: [], scope: 'global' }, () => {
    mode.zoom = false;
  });
  act({ id: 'view.output', title: 'View: OUTPUT (cluster events)', keys: [], scope: 'global' }, () => {
    mode.panelTab = 'output';
  });
  act({ id: 'view.terminal', title: 'View: TERMINAL', keys: [], scope: 'global' }, () => {
    mode.panelTab = 'terminal';
    focus.part = 'panel';
  });
  const control = source.control;
  if (control !== null) act({ id: 'cluster.add-follower', title: 'Cluster: add a follower', keys: [], scope: 'global' }, () => {
    if (!started) return;
    model.note('info', 'adding a follower…');
    control.addFollower().then(
      (n) => {
        model.note('info', `added ${n.name} at ${n.host}:${n.port}`);
        registerNodeActions();
        schedule();
      },
      (err: unknown) => model.note('error', `add follower failed: ${(err as Error).message}`),
    );
  });

  /**
   * By hand (issue 5): `kill` ends a node's worker as a crash would;
   * `restart` does the same but is logged as asked for. Either way a
   * follower comes back and a dead leader is replaced (failover).
   */
  function stopNode(name: string, how: 'kill' | 'restart'): void {
    if (control === null) {
      model.note('warn', `${how} ${name}: not from this view (the nodes are other processes, on their own hosts)`);
      return;
    }
    if (!started) return;
    model.note('warn', `${how === 'kill' ? 'killing' : 'restarting'} ${name}…`);
    (how === 'kill' ? control.kill(name) : control.restart(name)).catch((err: unknown) => model.note('error', `${how} ${name} failed: ${(err as Error).message}`));
  }
  const kill = (name: string): void => stopNode(name, 'kill');
  const restart = (name: string): void => stopNode(name, 'restart');

  function registerNodeActions(): void {
    keymap.unregister('node.');
    for (const name of model.names()) {
      act({ id: `node.kill.${name}`, title: `Kill node: ${name} (a follower restarts; the leader fails over)`, keys: [], scope: 'global' }, () => kill(name));
      act({ id: `node.restart.${name}`, title: `Restart node: ${name} (the leader hands over to a follower)`, keys: [], scope: 'global' }, () => restart(name));
      act({ id: `node.focus.${name}`, title: `Focus node: ${name}`, keys: [], scope: 'global' }, () => {
        focus.node = name;
        focus.part = 'editor';
        mode.zoom = true;
      });
      act({ id: `node.attach.${name}`, title: `Attach terminal to ${name}`, keys: [], scope: 'global' }, () => {
        void attach(name);
        mode.panelTab = 'terminal';
        focus.part = 'panel';
      });
      act({ id: `node.clear.${name}`, title: `Clear log: ${name}`, keys: [], scope: 'global' }, () => {
        model.node(name).log.clear();
        follow(name);
      });
      act({ id: `node.pause.${name}`, title: `Pause / follow log: ${name}`, keys: [], scope: 'global' }, () => togglePause(name));
    }
  }

  // ---- keys: palette, then terminal input, then the keymap ----
  /** Text keys go to the TERMINAL's input line, not to actions. */
  function typing(): boolean {
    return focus.part === 'panel' && mode.panelTab === 'terminal';
  }
  const isText = (ch: string | undefined, key: blessed.Widgets.Events.IKeyEventArg): boolean =>
    ch !== undefined && ch.length > 0 && !key.ctrl && !key.meta && ch >= ' ' && ch !== '\x7f' && key.name !== 'tab' && key.name !== 'enter' && key.name !== 'return' && key.name !== 'escape';

  screen.on('keypress', (ch: string | undefined, key: blessed.Widgets.Events.IKeyEventArg) => {
    if (closed || quitting !== null) return;
    const full = key.full;
    if (paletteState.open) {
      const matches = keymap.search(paletteState.query);
      if (full === 'escape' || full === 'C-p' || full === 'f1') paletteState.open = false;
      else if (full === 'up') paletteState.index = Math.max(0, paletteState.index - 1);
      else if (full === 'down') paletteState.index = Math.min(matches.length - 1, paletteState.index + 1);
      else if (full === 'backspace') paletteState.query = paletteState.query.slice(0, -1);
      else if (full === 'enter' || full === 'return') {
        const a = matches[paletteState.index];
        paletteState.open = false;
        if (key.name === 'enter' && a !== undefined) a.run();
      } else if (full === 'C-c') quit();
      else if (isText(ch, key)) {
        paletteState.query += ch;
        paletteState.index = 0;
      }
      schedule();
      return;
    }
    if (typing()) {
      if (full === 'C-c') {
        interruptTerminal();
        schedule();
        return;
      }
      if (isText(ch, key)) {
        term.input += ch;
        schedule();
        return;
      }
      if (full === 'backspace') {
        term.input = term.input.slice(0, -1);
        schedule();
        return;
      }
      if (key.name === 'enter') {
        void submit();
        schedule();
        return;
      }
      if (full === 'up' || full === 'down') {
        const h = term.history;
        if (h.length > 0) {
          term.hist = full === 'up' ? (term.hist === -1 ? h.length - 1 : Math.max(0, term.hist - 1)) : term.hist === -1 ? -1 : term.hist + 1;
          if (term.hist >= h.length) term.hist = -1;
          term.input = term.hist === -1 ? '' : (h[term.hist] ?? '');
        }
        schedule();
        return;
      }
    }
    const a = keymap.forKey(full, focus.part);
    if (a !== undefined) {
      a.run();
      schedule();
    }
  });

  // ---- mouse: click to focus ----
  sidebar.on('click', () => {
    focus.part = 'explorer';
    schedule();
  });
  panel.on('click', () => {
    focus.part = 'panel';
    schedule();
  });
  tabs.on('click', (data: { x: number }) => {
    const names = ['ALL', ...model.names()];
    let x = (data.x ?? 0) - ((current?.tabs.left as number | undefined) ?? 0);
    for (const n of names) {
      const w = n.length + 3;
      if (x < w) {
        if (n === 'ALL') mode.zoom = false;
        else {
          mode.zoom = true;
          focus.node = n;
        }
        break;
      }
      x -= w;
    }
    schedule();
  });
  screen.on('resize', () => render());
  process.once('SIGTERM', quit);
  process.once('SIGINT', quit);

  // ---- start the cluster (or attach to it) ----
  screen.render();
  const onEvent = (ev: NodeEvent): void => {
    const known = model.nodes.has(ev.node);
    model.onEvent(ev);
    // A node the supervisor started (a replacement after failover), or one that joined on etcd, gets its palette actions.
    if (!known && ev.node !== 'cluster' && started) registerNodeActions();
    schedule();
  };
  let readyLine: string;
  try {
    readyLine = await source.start(onEvent);
  } catch (err) {
    closed = true;
    screen.destroy();
    const e = err as Error;
    const inUse = /\bEADDRINUSE\b/.test(e.message) ? ' (a port is in use: pick another base with --port, or --port 0 for free ports)' : '';
    process.stderr.write(`${command}: could not start the cluster: ${e.message}${inUse}\n`);
    return 1;
  }
  started = true;
  model.note('info', readyLine);
  registerNodeActions();
  // The terminal connects on first use, not now: a client connection takes a
  // client id, and the README's walkthrough expects nc to get 10001.
  termOut('type a request and Enter to connect to the leader (or attach to another node from the palette)');

  let polling = false;
  const poll = async (): Promise<void> => {
    if (polling || quitting !== null) return;
    polling = true;
    try {
      const got = await source.poll((name) => isLive(model.node(name).state), 200);
      model.applyStats(got.stats, Date.now());
      for (const [name, rows] of got.locks) model.node(name).locks = rows;
    } finally {
      polling = false;
    }
    schedule();
  };
  const poller = setInterval(() => void poll(), POLL_MS);
  void poll();
  render();
  return exit;
}
