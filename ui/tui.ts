/**
 * `dlock up` in a terminal: a VS Code-style view of the cluster.
 *
 * A view only: it subscribes to node events (log batches arrive already
 * batched every 50 ms by the workers), polls stats and lock maps over the
 * control plane twice a second, and renders at most every RENDER_MS. It
 * never sits in the request path: client TCP goes straight to the workers.
 *
 * Logs are drawn from capped buffers (ui/model.ts), only the lines that fit,
 * into plain boxes: blessed's log widget re-parses its whole content on
 * every line (blessed), which a busy node would turn into a
 * render storm.
 *
 * Keys go through one dispatcher: the palette when open, else a question
 * the TERMINAL asked (attach elsewhere?), else the TERMINAL's input line
 * (ui/terminal.ts) for text and editing keys when it has the focus, else
 * the keymap (ui/keymap.ts), which also writes the status bar hints and
 * fills the palette.
 */
import blessed from 'blessed';
import type { NodeEvent } from '../src/host/threads/control.js';
import type { UpOptions } from '../src/host/threads/up.js';
import type { LogKind, LogLine } from '../src/replica/node-log.js';
import { ClusterSource } from './source-cluster.js';
import type { ViewSource } from './source.js';
import { timestamp } from '../src/text.js';
import { plural } from '../src/text.js';
import { Keymap, type Action } from './keymap.js';
import { lockMapText } from './lockmap.js';
import { paletteEntry, paletteRow, paletteWidth } from './palette.js';
import { isText, Terminal, type TermOptions } from './terminal.js';
import { terminalColors, theme } from './theme.js';
import { layout, PARTS, type Focus, type Layout, type Mode, type Rect } from './layout.js';
import { ClusterModel, isLive, sparkline, type NodeView } from './model.js';
import { clip, wrap } from './text.js';

export type { TermOptions } from './terminal.js';

const RENDER_MS = 100;
const POLL_MS = 500;

/** The same options as headless `dlock up`. */
export type TuiOptions = UpOptions;

/** `dlock up` in a terminal: the one-process cluster, started and owned by the view. */
export function runTui(opts: TuiOptions): Promise<number> {
  return runView(new ClusterSource(opts), { authToken: opts.authToken, tls: opts.tls === null ? null : { cert: opts.tls.cert } }, 'dlock up');
}

/**
 * Log line colours by kind; info lines are secondary text, requests the
 * terminal's own colour (white would vanish on a light theme; ui/theme.ts).
 */
const KIND_COLOR: Record<Exclude<LogKind, 'info' | 'req'>, string> = {
  conn: 'cyan',
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
  /** A kill or restart waiting for `y` (stopNode). */
  let asking: { question: string; yes: () => void; no: () => void } | null = null;
  const screen = blessed.screen({ smartCSR: true, fullUnicode: true, title: 'dlock', autoPadding: false, warnings: false });
  // blessed reduces colours to what it read from terminfo, which it can
  // misread (ui/theme.ts); its typings leave the count out.
  const tput = screen.tput as unknown as { colors: number };
  const th = theme(terminalColors(tput.colors, process.env));
  tput.colors = th.colors;
  const paint = (kind: LogKind, text: string): string => (kind === 'info' ? th.dim(text) : kind === 'req' ? text : `{${KIND_COLOR[kind]}-fg}${text}{/}`);
  const model = new ClusterModel();
  const keymap = new Keymap();
  const focus: Focus = { part: 'editor', node: 'leader' };
  const mode: { zoom: boolean; panelTab: 'terminal' | 'output' } = { zoom: false, panelTab: 'terminal' };
  let current: Layout | null = null;

  // wrap: false — lines are clipped to the pane here, never re-flowed by blessed.
  const box = (o: blessed.Widgets.BoxOptions): blessed.Widgets.BoxElement => blessed.box({ parent: screen, tags: true, wrap: false, ...o } as blessed.Widgets.BoxOptions);
  const sidebar = box({ border: { type: 'line' }, label: ' CLUSTER ', clickable: true });
  const tabs = box({ clickable: true });
  const panel = box({ border: { type: 'line' }, clickable: true });
  const status = box({ style: { bg: 'blue', fg: 'white' } });
  const palette = box({ border: { type: 'line' }, label: ' Command Palette ', hidden: true, style: { border: { fg: 'cyan' } } });
  const splash = box({ top: 'center', left: 'center', width: 40, height: 3, border: { type: 'line' }, content: source.starting });
  const widgets = new Map<string, NodeWidgets>();

  // ---- the embedded terminal (a dlock client attached to one node) ----
  let started = false;
  const term = new Terminal(
    {
      nodes: () => source.nodes(),
      sessionLocks: (node, id) => {
        const name = node === 'leader' ? (model.leaderName() ?? node) : node;
        return model.node(name).locks.filter((r) => r.owner === id && r.ttlLeft === null).map((r) => r.lock);
      },
      changed: () => schedule(),
      quit: () => quit(),
    },
    opts,
  );

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

  const setBorder = (el: blessed.Widgets.BoxElement, active: boolean): void => {
    const fg = th.border(active);
    (el.style as { border?: { fg?: string } }).border = fg === null ? {} : { fg };
  };

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
      out.unshift(...parts.map((p) => paint(l.kind, esc(p))));
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
    const total = v.stats?.locks ?? v.locks.length;
    const map = lockMapText(v.locks, lw, Math.max(0, pane.locks.height - 2), Math.max(total, v.locks.length));
    w.locks.setLabel(` ${esc(clip(`${model.label(v.name)} · lock map (${v.state === 'gone' ? 'gone' : total})`, Math.max(1, pane.locks.width - 6)))} `);
    w.locks.setContent([...map.head.map((h) => `{bold}${esc(clip(h, lw))}{/bold}`), ...map.body.map((r) => esc(clip(r, lw)))].join('\n'));
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
      out.push(`   ${th.dim(esc(clip(parts.join(' '), w - 3)))}`);
    }
    sidebar.setContent(out.join('\n'));
  }

  function renderTabs(l: Layout): void {
    place(tabs, l.tabs);
    const items = ['ALL', ...model.names()];
    const active = mode.zoom ? focus.node : 'ALL';
    tabs.setContent(items.map((t) => (t === active ? `{inverse} ${esc(t)} {/inverse}` : th.dim(` ${esc(t)} `))).join(th.dim('│')));
  }

  function renderPanel(l: Layout): void {
    place(panel, l.panel);
    if (l.panel === null) return;
    setBorder(panel, focus.part === 'panel');
    const t = mode.panelTab;
    const tab = (name: string, on: boolean): string => (on ? `{bold}{underline}${name}{/underline}{/bold}` : th.dim(name));
    panel.setLabel(` ${tab(`TERMINAL (${termTitle()})`, t === 'terminal')}  ${tab('OUTPUT', t === 'output')} `);
    const w = l.panel.width - 2;
    const h = l.panel.height - 2;
    if (t === 'output') {
      panel.setContent(
        model.output
          .window(h)
          .map((x) => paint(x.kind, esc(clip(`${hhmmss(x.t)} ${x.text}`, w))))
          .join('\n'),
      );
      return;
    }
    const r = term.rows(w, h);
    const p = r.prompt;
    const prompt = focus.part === 'panel' ? `${esc(p.before)}{inverse}${esc(p.at)}{/inverse}${esc(p.after)}` : esc(p.before + p.at + p.after);
    panel.setContent([...r.body.map(esc), prompt].join('\n'));
  }

  /** The node the TERMINAL is (or will be) attached to, in step with the cluster: `leader` names the node that leads now; a node that went says so. */
  function termTitle(): string {
    if (term.node === 'leader') {
      const lead = model.leaderName();
      return lead === 'leader' ? 'leader' : `leader: ${lead}`;
    }
    return model.names().includes(term.node) && model.node(term.node).state === 'gone' ? `${term.node} · gone` : term.node;
  }

  function renderStatus(l: Layout): void {
    place(status, l.status);
    const s = model.summary();
    // Narrow screens drop the leader's address and the sparkline before the hints.
    const wide = l.status.width >= 120;
    const lead = wide ? ` leader ${s.leader} │` : '';
    const spark = wide ? ` ${sparkline(model.opsHistory, 10)}` : '';
    const width = l.status.width;
    const question = asking?.question ?? term.question();
    if (question !== null) {
      status.setContent(`{bold}${esc(clip(` ${question}`, width))}{/bold}`);
      return;
    }
    // The hints for next part, the palette and quit are always shown
    // (keymap.hints); the counts give way to the part's own hints.
    const up = ` ${s.up}/${s.total} up │ `;
    const counts = `${plural(s.clients, 'client')} │ ${plural(s.locks, 'lock')} │ `;
    const lefts = [`${lead}${up}${counts}${model.opsPerSec} ops/s${spark} │ `, `${up}${counts}`, up];
    // The longest left part that shows as many hints as any.
    const shown = lefts.map((left) => {
      const hints = keymap.hints(focus.part, typing(), width - left.length);
      return { line: left + hints, hints: hints.split('  ').length };
    });
    const most = Math.max(...shown.map((x) => x.hints));
    status.setContent(esc(clip(shown.find((x) => x.hints === most)?.line ?? '', width)));
  }

  function renderPalette(l: Layout): void {
    if (!paletteState.open) {
      palette.hide();
      return;
    }
    // As wide as the longest entry of all (the box does not jump while filtering).
    const width = paletteWidth(keymap.all().map(paletteEntry), l.cols);
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
      const row = paletteRow(paletteEntry(a), inner);
      const selected = start + i === paletteState.index;
      // The selected row is inverse whole; the others show their keys as secondary text.
      lines.push(selected ? `{inverse}${esc(row.title + row.gap + row.keys)}{/inverse}` : `${esc(row.title)}${row.gap}${th.dim(esc(row.keys))}`);
    });
    if (matches.length === 0) lines.push(th.dim('no matching command'));
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
      term.destroy();
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
  act({ id: 'explorer.attach', title: 'Attach the terminal to the selected node', keys: ['t'], scope: 'explorer', hint: 'attach' }, () => {
    term.attach(focus.node);
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
   * By hand: `kill` ends a node's worker as a crash would;
   * `restart` does the same but is logged as asked for. Either way a
   * follower comes back and a dead leader is replaced (failover).
   */
  function stopNode(name: string, how: 'kill' | 'restart'): void {
    if (control === null) {
      model.note('warn', `${how} ${name}: not from this view (the nodes are other processes, on their own hosts)`);
      return;
    }
    if (!started) return;
    if (model.node(name).state === 'gone') {
      model.note('info', `${name} is gone: nothing to ${how}`);
      return;
    }
    const leads = model.leaderName() === name;
    const what = how === 'kill' ? (leads ? 'a follower takes over as leader' : 'it restarts on its port') : leads ? 'the leader hands over to a follower' : 'it restarts on its port';
    // One key must not kill a node (a Tab too many before typing): ask first, as attaching elsewhere does.
    asking = {
      question: `${how === 'kill' ? 'Kill' : 'Restart'} ${model.label(name)}? (${what}; its clients' connections close) y: yes · any other key: no`,
      yes: () => {
        const c = control;
        if (c === null) return;
        model.note('warn', `${how === 'kill' ? 'killing' : 'restarting'} ${name}…`);
        (how === 'kill' ? c.kill(name) : c.restart(name)).catch((err: unknown) => model.note('error', `${how} ${name} failed: ${(err as Error).message}`));
      },
      no: () => model.note('info', `${name} not ${how === 'kill' ? 'killed' : 'restarted'}`),
    };
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
        term.attach(name);
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
    // A kill or restart waiting for y: this key answers it (as below).
    if (asking !== null) {
      if (full !== 'return') {
        const a = asking;
        asking = null;
        if (ch === 'y' || ch === 'Y') a.yes();
        else a.no();
      }
      schedule();
      return;
    }
    // An attach waiting for y: this key answers it (Enter arrives as
    // 'return' then 'enter': the second one answers).
    if (term.question() !== null) {
      if (full !== 'return') term.answer(ch);
      schedule();
      return;
    }
    if (typing() && term.key(ch, key)) {
      schedule();
      return;
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
  term.write('type a request and Enter to connect to the leader (or attach to another node from the palette)');

  let polling = false;
  const poll = async (): Promise<void> => {
    if (polling || quitting !== null) return;
    polling = true;
    try {
      const got = await source.poll((name) => isLive(model.node(name).state), 200);
      model.applyStats(got.stats, performance.now()); // ops/s: an interval, on the monotonic clock
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
