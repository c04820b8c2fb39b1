/**
 * The TUI's layout: a pure function of (columns, rows, focus, mode), laid
 * out the way VS Code is: side bar (CLUSTER explorer) on the left at full
 * height, editor area (a tab strip over one pane per node, side by side like
 * editor groups, a grid when they do not fit) to its right, the bottom panel
 * (TERMINAL / OUTPUT) under the editor, and a status bar on the last row.
 *
 * No terminal here: tests call layout() and renderText() and compare text.
 * Degrades in steps: narrow screens hide the side bar, short ones shrink or
 * hide the panel, and when the panes would be too small the editor shows
 * only the focused node (the tabs switch nodes).
 */

export type Part = 'explorer' | 'editor' | 'panel';
export const PARTS: readonly Part[] = ['explorer', 'editor', 'panel'];

export interface Focus {
  part: Part;
  /** The node the editor and the terminal are about. */
  node: string;
}

export interface Mode {
  /** Node names in display order. */
  nodes: readonly string[];
  /** Show only the focused node, full-size (its tab was chosen). */
  zoom: boolean;
  panelTab: 'terminal' | 'output';
}

export interface Rect {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface PaneLayout {
  node: string;
  /** The node's log (top, or left when wide). */
  log: Rect;
  /** The node's lock map (below, or right when wide). */
  locks: Rect;
}

export interface Layout {
  cols: number;
  rows: number;
  sidebar: Rect | null;
  tabs: Rect;
  panes: PaneLayout[];
  /** 'grid': every node has a pane; 'single': only the focused node. */
  editorMode: 'grid' | 'single';
  panel: Rect | null;
  status: Rect;
}

export const MIN_PANE_WIDTH = 36;
export const MIN_PANE_HEIGHT = 10;

const rect = (left: number, top: number, width: number, height: number): Rect => ({ left, top, width: Math.max(0, width), height: Math.max(0, height) });

function sidebarWidth(cols: number): number {
  if (cols >= 120) return 30;
  if (cols >= 70) return 22;
  return 0;
}

function panelHeight(rows: number): number {
  if (rows >= 40) return 12;
  if (rows >= 24) return 8;
  if (rows >= 16) return 6;
  return 0;
}

/** Split a node's pane into its log and its lock map. */
function splitPane(node: string, r: Rect): PaneLayout {
  if (r.width >= 90) {
    const locksW = Math.max(34, Math.floor(r.width * 0.4));
    return { node, log: rect(r.left, r.top, r.width - locksW, r.height), locks: rect(r.left + r.width - locksW, r.top, locksW, r.height) };
  }
  const locksH = Math.max(5, Math.floor(r.height * 0.4));
  return { node, log: rect(r.left, r.top, r.width, r.height - locksH), locks: rect(r.left, r.top + r.height - locksH, r.width, locksH) };
}

export function layout(cols: number, rows: number, focus: Focus, mode: Mode): Layout {
  const status = rect(0, rows - 1, cols, 1);
  const sideW = sidebarWidth(cols);
  const panelH = panelHeight(rows);
  const sidebar = sideW > 0 ? rect(0, 0, sideW, rows - 1) : null;
  const edLeft = sideW;
  const edWidth = cols - sideW;
  const edHeight = rows - 1 - panelH;
  const tabs = rect(edLeft, 0, edWidth, 1);
  const paneTop = 1;
  const paneH = edHeight - 1;
  const panel = panelH > 0 ? rect(edLeft, edHeight, edWidth, panelH) : null;

  const nodes = mode.nodes;
  let editorMode: 'grid' | 'single' = 'single';
  let columns = 1;
  let gridRows = 1;
  if (!mode.zoom && nodes.length > 1) {
    columns = Math.min(nodes.length, Math.floor(edWidth / MIN_PANE_WIDTH));
    if (columns >= 1) {
      gridRows = Math.ceil(nodes.length / columns);
      if (Math.floor(paneH / gridRows) >= MIN_PANE_HEIGHT) editorMode = 'grid';
    }
  }
  const panes: PaneLayout[] = [];
  if (editorMode === 'grid') {
    nodes.forEach((node, i) => {
      const c = i % columns;
      const r = Math.floor(i / columns);
      // The last row's panes share its width, so no hole is left.
      const inRow = r === gridRows - 1 ? nodes.length - columns * (gridRows - 1) : columns;
      const w = Math.floor(edWidth / inRow);
      const h = Math.floor(paneH / gridRows);
      const left = edLeft + c * w;
      const top = paneTop + r * h;
      const width = c === inRow - 1 ? edLeft + edWidth - left : w;
      const height = r === gridRows - 1 ? paneTop + paneH - top : h;
      panes.push(splitPane(node, rect(left, top, width, height)));
    });
  } else {
    const node = nodes.includes(focus.node) ? focus.node : (nodes[0] ?? focus.node);
    panes.push(splitPane(node, rect(edLeft, paneTop, edWidth, paneH)));
  }
  return { cols, rows, sidebar, tabs, panes, editorMode, panel, status };
}

/**
 * The layout as text: each region outlined and named, for snapshot tests
 * and for reading a layout without a terminal.
 */
export function renderText(l: Layout): string {
  const grid: string[][] = Array.from({ length: l.rows }, () => Array.from({ length: l.cols }, () => ' '));
  const put = (x: number, y: number, ch: string): void => {
    const row = grid[y];
    if (row !== undefined && x >= 0 && x < l.cols) row[x] = ch;
  };
  const box = (r: Rect | null, label: string): void => {
    if (r === null || r.width === 0 || r.height === 0) return;
    const right = r.left + r.width - 1;
    const bottom = r.top + r.height - 1;
    if (r.height === 1) {
      for (let x = r.left; x <= right; x++) put(x, r.top, '=');
    } else {
      for (let x = r.left; x <= right; x++) {
        put(x, r.top, '-');
        put(x, bottom, '-');
      }
      for (let y = r.top; y <= bottom; y++) {
        put(r.left, y, '|');
        put(right, y, '|');
      }
      for (const [x, y] of [
        [r.left, r.top],
        [right, r.top],
        [r.left, bottom],
        [right, bottom],
      ] as const)
        put(x, y, '+');
    }
    [...` ${label} `].slice(0, Math.max(0, r.width - 2)).forEach((ch, i) => put(r.left + 1 + i, r.top, ch));
  };
  box(l.sidebar, 'CLUSTER');
  box(l.tabs, `tabs (${l.editorMode})`);
  for (const p of l.panes) {
    box(p.log, `log ${p.node}`);
    box(p.locks, `locks ${p.node}`);
  }
  box(l.panel, 'panel');
  box(l.status, 'status');
  return grid.map((r) => r.join('').trimEnd()).join('\n');
}
