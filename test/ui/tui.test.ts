/**
 * The TUI for real: `dlock up --followers 2` in tmux, real TCP clients, and
 * assertions on what `tmux capture-pane` shows.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { eventually, LineClient } from '../helpers/line-client.js';
import { hasTmux, Tmux } from '../helpers/tmux.js';

const CLI = fileURLToPath(new URL('../../dist/ui/cli.js', import.meta.url));

/** Node addresses as the explorer shows them. */
function explorerPorts(screen: string): Record<string, number> {
  const ports: Record<string, number> = {};
  let last: string | null = null;
  for (const line of screen.split('\n')) {
    const node = /[●◌✖↻★] (leader|follower-\d+) /.exec(line);
    if (node !== null) last = node[1] as string;
    const addr = /│ +127\.0\.0\.1:(\d+)/.exec(line);
    if (addr !== null && last !== null && ports[last] === undefined) ports[last] = Number(addr[1]);
  }
  return ports;
}

const count = (s: string, re: RegExp): number => (s.match(new RegExp(re.source, 'g')) ?? []).length;

/** SGR sequences that set black text (30), the colour that vanishes on dark themes, in `ansi` (tmux capture-pane -e). */
const blackText = (ansi: string): string[] => (ansi.match(/\u001b\[[0-9;]*m/g) ?? []).filter((sgr) => sgr.slice(2, -1).split(';').includes('30'));

describe.skipIf(!hasTmux)('dlock up in a terminal', () => {
  it('160x48: explorer, lock maps and logs of every node, the palette, and q exits 0', async () => {
    const t = new Tmux(160, 48);
    const clients: LineClient[] = [];
    try {
      t.start(`${process.execPath} ${CLI} up --followers 2 --port 0 --first-token 1`);
      const first = await t.until(/● follower-2 up/, 'three nodes up in the explorer');
      expect(first).toMatch(/CLUSTER/);
      expect(first).toMatch(/● leader up/);
      expect(first).toMatch(/● follower-1 up/);
      expect(first).toMatch(/ ALL │ leader │ follower-1 │ follower-2/); // editor tabs
      expect(first).toMatch(/TERMINAL \(leader\)\s+OUTPUT/); // bottom panel
      expect(first).toMatch(/3\/3 up │ \d+ clients? │ \d+ locks? │ \d+ ops\/s/); // status bar
      expect(first).toMatch(/PgUp scroll {2}→ next node {2}Enter zoom {2}p pause {2}Tab next part {2}\^P palette {2}q quit/); // hints from the keymap
      const ports = explorerPorts(first);
      expect(Object.keys(ports)).toEqual(['leader', 'follower-1', 'follower-2']);

      // A client on follower-1 (the port 9002 of a default start) preempts lock01.
      const c = await LineClient.open(ports['follower-1'] as number);
      clients.push(c);
      expect(c.id).toBe(20001);
      expect(await c.ask('preempt lock01')).toBe('PreemptLock Success owner=20001 token=1');
      // every node's lock map shows it, with owner 20001
      const row = 'lock01 +20001 +1 +session';
      const shown = await t.until(new RegExp(`${row}[^]*${row}[^]*${row}`), 'lock01 in three lock maps');
      expect(count(shown, /lock01 +20001 +1 +session/)).toBe(3);
      // and the logs: followers applying it, side by side...
      expect(count(await t.until(/UpdateLockmap lock01 20001[^]*UpdateLockmap lock01 20001/, 'both follower logs'), /UpdateLockmap lock01 20001/)).toBe(2);
      // ...and the leader's broadcast, which reads best full-size: zoom it from the palette.
      await t.palette('focus node: leader');
      await t.until(/^(?![^]*follower-1 · lock map)[^]*broadcast new lock_map lock01 20001 token=1/, 'the leader alone, its log full width');
      t.keys('Enter'); // the editor's zoom key toggles back to all nodes
      await t.until(/leader · lock map[^\n]*follower-1 · lock map[^\n]*follower-2 · lock map/, 'all three nodes again');
      expect(t.screen()).toMatch(/● follower-1 up\s+│[^\n]*\n│ +127\.0\.0\.1:\d+ +│[^\n]*\n│ +clients 1 locks 1 lag 0/);
      // [LP-18] a value shows last on the lock's row, in every node's lock map.
      expect(await c.ask('preempt svc value=10.0.0.5:8080')).toBe('PreemptLock Success owner=20001 token=2');
      // At this width the value takes its own row under the lock's.
      const valued = await t.until(/(value=10\.0\.0\.5:8080[^]*){3}/, 'svc with its value in three lock maps');
      expect(count(valued, /svc +20001 +2 +session/)).toBe(3);
      // [LP-19] A watch waiting on svc through follower-2 shows in follower-2's lock map.
      const w = await LineClient.open(ports['follower-2'] as number);
      clients.push(w);
      w.write('watch svc\n');
      await t.until(/watchers=1/, 'the watcher in a lock map');
      expect(await c.ask('release svc')).toBe('ReleaseLock Success');
      expect(await w.next()).toBe('WatchLock:Free');
      // [LP-21] a semaphore's count, and [LP-20] shared holders, in every lock map.
      expect(await c.ask('preempt pool limit=3')).toMatch(/^PreemptLock Success/);
      expect(await w.ask('preempt pool limit=3')).toMatch(/^PreemptLock Success/);
      expect(count(await t.until(/(pool +2\/3[^]*){3}/, 'pool 2/3 in three lock maps'), /pool +2\/3 /)).toBe(3);
      expect(await c.ask('release pool')).toBe('ReleaseLock Success');
      expect(await w.ask('release pool')).toBe('ReleaseLock Success');

      // The palette opens, filters, and runs an action.
      await t.palette('view: output');
      const out = await t.until(/ready leader=127\.0\.0\.1:\d+ follower-1=/, 'the OUTPUT tab with the ready line');
      expect(out).not.toMatch(/Command Palette/);

      // The embedded terminal: Tab to the panel, back to TERMINAL, type a request.
      await t.palette('view: terminal');
      await t.until(/distributeLock:>/, 'the prompt');
      t.keys('check lock01', 'Enter');
      await t.until(/Response: CheckLock:Lock:20001 token=1/, 'the reply in the terminal');
      // The new verbs' forms too [LP-21, LP-22]: a semaphore's place, and two locks at once.
      t.keys('preempt tpool limit=2', 'Enter');
      await t.until(/Response: PreemptLock Success owner=\d+ token=\d+[^]*distributeLock:>/, 'a semaphore place taken in the terminal');
      t.keys('check tpool', 'Enter');
      await t.until(/Response: CheckLock:Held:1\/2 token=\d+ owners=\d+/, 'its count in the terminal');
      t.keys('preempt tpair/a tpair/b', 'Enter');
      await t.until(/Response: PreemptLock Success[^]*Response: PreemptLock Success/, 'two locks at once in the terminal');

      // The mouse: a click focuses the part under it (the hints follow).
      await t.clickUntil(5, 10, /↑ select {2}Enter open {2}t attach/, 'the explorer focused by a click');
      await t.clickUntil(60, 44, /\^O terminal\/output {2}Tab next part/, 'the panel focused by a click');
      await t.clickUntil(140, 10, /PgUp scroll {2}→ next node/, 'the editor focused by a click'); // follower-2's pane
      t.keys('Enter'); // zoom the clicked node
      await t.until(/^(?![^]*leader · lock map)[^]*follower-2 · lock map/, "follower-2's pane alone, full-size");
      t.keys('Enter');

      // A palette action that changes the cluster: add a follower.
      await t.palette('add a follower');
      const four = await t.until(/● follower-3 up/, 'follower-3 in the explorer');
      expect(four).toMatch(/ ALL │ leader │ follower-1 │ follower-2 │ follower-3/);
      await t.until(/4\/4 up/, 'four nodes up in the status bar');
      // it has the lock map already, from its snapshot
      await t.until(/follower-3 · lock map \(4\)[^]*tpool +1\/2 /, "follower-3's lock map, the semaphore's count with it");

      // q quits (from the editor: in the terminal, q is just a letter).
      t.keys('q');
      expect(await t.exitStatus()).toBe(0);
    } finally {
      for (const c of clients) c.close();
      t.kill();
    }
  });

  it('80x24: usable, nodes switch with the arrows, resizing re-lays out, q exits 0', async () => {
    const t = new Tmux(80, 24);
    const clients: LineClient[] = [];
    try {
      t.start(`${process.execPath} ${CLI} up --followers 2 --port 0 --first-token 1`);
      const first = await t.until(/● follower-2 up/, 'three nodes in the explorer');
      const ports = explorerPorts(first);
      expect(Object.keys(ports)).toEqual(['leader', 'follower-1', 'follower-2']);
      const c = await LineClient.open(ports['follower-1'] as number);
      clients.push(c);
      expect(await c.ask('preempt lock01')).toBe('PreemptLock Success owner=20001 token=1');
      // one node at a time: the leader first
      await t.until(/leader · lock map \(1\)[^]*lock01 +20001 +1 +session/, "the leader's lock map");
      expect(t.screen()).not.toMatch(/follower-1 · lock map/);
      t.keys('Right');
      await t.until(/follower-1 · lock map \(1\)[^]*lock01 +20001 +1 +session/, "follower-1's lock map");
      t.keys('Right');
      await t.until(/follower-2 · lock map \(1\)[^]*lock01 +20001 +1 +session/, "follower-2's lock map");
      await t.until(/UpdateLockmap lock01 20001/, "follower-2's log");
      // p pauses the log (it stops following), p again follows; PgUp scrolls back
      t.keys('p');
      await t.until(/follower-2 127\.0\.0\.1:\d+ · log paused 0 back/, 'the log paused');
      t.keys('p');
      await t.until(/^(?![^]*paused)[^]*follower-2 127\.0\.0\.1:\d+ · log/, 'the log following again');
      // give it more history than the pane shows, then scroll back
      const chatty = await LineClient.open(ports['follower-2'] as number);
      clients.push(chatty);
      for (let i = 0; i < 40; i++) expect(await chatty.ask('ping')).toBe('PONG');
      await t.until(/Response 30001: PONG/, 'the pings in the log');
      t.keys('PageUp');
      await t.until(/· log paused \d+ back/, 'scrolled back');
      t.keys('p');
      // grow the terminal: the layout becomes three groups side by side
      t.run('resize-window', '-t', 't', '-x', '160', '-y', '48');
      await t.until(/leader · lock map[^\n]*follower-1 · lock map[^\n]*follower-2 · lock map/, 'three lock maps side by side after the resize');
      t.keys('q');
      expect(await t.exitStatus()).toBe(0);
    } finally {
      for (const c of clients) c.close();
      t.kill();
    }
  });

  it('kills and restarts from the palette and the explorer: a follower restarts, the leader fails over, and the explorer shows it', async () => {
    const t = new Tmux(160, 48);
    const clients: LineClient[] = [];
    try {
      t.start(`${process.execPath} ${CLI} up --followers 2 --port 0 --first-token 1`);
      const first = await t.until(/● follower-2 up/, 'three nodes in the explorer');
      const ports = explorerPorts(first);
      const c = await LineClient.open(ports['follower-1'] as number);
      clients.push(c);
      expect(await c.ask('preempt tui-kept ttl=60000')).toMatch(/^PreemptLock Success owner=20001 /);

      // A follower killed from the palette comes back on its port.
      await t.palette('kill node: follower-2');
      await t.until(/Kill follower-2\? \(it restarts on its port; its clients' connections close\) y: yes/, 'the question before a kill');
      t.keys('y');
      await t.palette('view: output');
      await t.until(new RegExp(`follower-2 restarted on 127\\.0\\.0\\.1:${ports['follower-2']} in \\d+ ms`), 'the restart in OUTPUT');
      await t.until(/● follower-2 up/, 'follower-2 up again');

      // The leader killed from the explorer (k): a follower is promoted.
      await t.clickUntil(5, 3, /k kill/, 'the explorer hints, with kill'); // focus the explorer
      // One k asks first (a Tab too many must not kill a node); any key but y keeps it.
      t.keys('k'); // the selected node: the leader
      await t.until(/Kill leader\? \(a follower takes over as leader; its clients' connections close\) y: yes · any other key: no/, 'the question before killing the leader');
      t.keys('n');
      await t.palette('view: output');
      await t.until(/leader not killed/, 'kept, and said so');
      await t.clickUntil(5, 3, /k kill/, 'the explorer hints, with kill');
      t.keys('k');
      await t.until(/Kill leader\? /, 'the question again');
      t.keys('y');
      const after = await t.until(/★ follower-1 \(leader\) up[^]*● follower-3 up/, 'the promoted follower, with its role, and its replacement');
      // the dead leader is shown as gone, not as a node with stale numbers, and is not counted
      expect(after).toMatch(/⊘ leader gone/);
      expect(after).toMatch(/follower-1 promoted to leader in \d+ ms/); // OUTPUT
      // The TERMINAL's title follows: Enter would connect to the node that leads now.
      await t.until(/TERMINAL \(leader: follower-1\)/, "the TERMINAL's title after the failover");
      await t.until(new RegExp(` leader 127\\.0\\.0\\.1:${ports['leader']} │ 3/3 up │ \\d+ clients? │ 1 lock │`), 'the status bar: the base port again, live nodes, the lock count');
      expect(after).toMatch(/▾ dlock \(3 nodes\)/);
      // Its pane's label fits its box: the top-right corner is there before the next pane's.
      expect(after).toMatch(/┌─ ★ follower-1 \(leader\) [^\n┌]*┐┌─ ● follower-2 /);
      // the lease survived, and the new follower has it from its snapshot
      await t.until(/follower-3 · lock map \(1\)[^]*tui-kept +20001/, "follower-3's lock map");
      expect(await c.ask('check tui-kept')).toMatch(/^CheckLock:Lock:20001 token=1 ttl=\d+$/);
      // A lock taken through a surviving follower shows in the promoted
      // leader's lock map and counts (they froze before).
      const d = await LineClient.open(ports['follower-2'] as number);
      clients.push(d);
      expect(await d.ask('preempt tui-after')).toMatch(/^PreemptLock Success/);
      await t.until(/follower-1 \(leader\) · lock map \(2\)[^]*tui-after +30\d+/, "the promoted leader's lock map");
      await t.until(/│ 2 locks │/, 'the status bar lock count');
      // A restart asked for from the palette: logged as such, not as a crash.
      await t.palette('restart node: follower-3');
      await t.until(/Restart follower-3\? /, 'the question before a restart');
      t.keys('y');
      await t.until(/follower-3 stopped for a restart on request[^]*follower-3 restarted on 127\.0\.0\.1:\d+ in \d+ ms/, 'the restart in OUTPUT');
      await t.until(/● follower-3 up/, 'follower-3 up again');

      // TERMINAL: Ctrl+C cancels a waiting request, as in a shell; it does
      // not stop the cluster. q types there, so the hints say ^C.
      await t.palette('view: terminal');
      await t.until(/\^C quit/, 'the terminal hints');
      expect(t.screen()).not.toMatch(/ q quit/);
      t.keys('-l', 'acquire tui-after');
      t.keys('Enter');
      await t.until(/Request: acquire tui-after/, 'the acquire sent');
      await eventually(async () => (await t.screen()).includes('connected to') && (await d.ask('check tui-after')).startsWith('CheckLock:Lock:'), 'the acquire waiting');
      t.keys('C-c');
      await t.until(/\^C: cancelled the waiting request by closing this terminal's connection/, 'the cancel');
      // A waiting watch [LP-19] is cancelled the same way.
      t.keys('-l', 'watch tui-after');
      t.keys('Enter');
      await t.until(/Request: watch tui-after/, 'the watch sent');
      t.keys('C-c');
      await t.until(/(\^C: cancelled the waiting request[^]*){2}/, 'the watch cancelled');
      t.keys('-l', 'pin');
      t.keys('C-c'); // no request waits: clears the line, and asks
      await t.until(/\^C \(press Ctrl\+C again to stop the cluster and quit/, 'the question');
      expect(t.screen()).not.toMatch(/distributeLock:> pin/);
      t.keys('C-c');
      expect(await t.exitStatus()).toBe(0);
    } finally {
      for (const c of clients) c.close();
      t.kill();
    }
  });

  it('at 80x24: no black text, an editable input line, whole replies, tokens and names, hints, palette keys, a warning before attaching elsewhere', async () => {
    const t = new Tmux(80, 24);
    const clients: LineClient[] = [];
    const token = '1764512345678901'; // 16 digits, as tokens seeded from the clock have
    const name = 'before-deploy-migration-lock';
    try {
      t.start(`${process.execPath} ${CLI} up --followers 2 --port 0 --first-token ${token}`);
      const first = await t.until(/● follower-2 up/, 'three nodes up');
      const ports = explorerPorts(first);
      // Secondary text is gray (SGR 90) in tmux's 256 colours, never black (30).
      expect(blackText(t.screenAnsi())).toEqual([]);
      expect(t.screenAnsi()).toMatch(/\u001b\[90m/);
      // The status bar keeps next part, the palette and quit at 80 columns,
      // and the focused part's first hints: the counts give way.
      expect(first.trimEnd().split('\n').at(-1)).toMatch(/^ 3\/3 up │ PgUp scroll {2}→ next node {2}Tab next part {2}\^P palette {2}q quit$/);

      // The TERMINAL's input line edits: Home, typing mid-line, End, Ctrl+W, Ctrl+U.
      t.keys('Tab');
      await t.until(/\^C quit/, 'the terminal focused');
      t.keys('-l', `eempt ${name} x9`); // 37 columns: the input's room at 80x24 is 38
      await t.until(/distributeLock:> eempt/, 'the text typed');
      t.keys('Home');
      t.keys('-l', 'pr');
      await t.until(new RegExp(`distributeLock:> preempt ${name} x +│`), 'typed at the start of the line (the end scrolls out)');
      t.keys('End', 'C-w'); // the word before the cursor: x9
      await t.until(new RegExp(`distributeLock:> preempt ${name} +│`), 'Ctrl+W deleted the last word');
      t.keys('Left', 'Left', 'Left', 'Left', 'Right', 'BSpace', 'BSpace');
      await t.until(/distributeLock:> preempt before-deploy-migration-ck +│/, '← → and Backspace');
      t.keys('-l', 'lo');
      t.keys('Enter');
      // The reply is wrapped, not cut: the 16-digit token whole on a row.
      await t.until(new RegExp(`Response: PreemptLock Success[^]*owner=10001 token=${token}`), 'the whole reply');
      t.keys('-l', 'garbage');
      await t.until(/distributeLock:> garbage/, 'more text');
      t.keys('C-u');
      await t.until(/distributeLock:> +│/, 'Ctrl+U cleared the line');

      // The lock map: the name and the token whole (too wide for one row, each lock takes two).
      const map = await t.until(new RegExp(`│${name} +│\\n[^\\n]*│ +owner=10001 token=${token} session +│`), 'the lock map, nothing cut');
      expect(map).toMatch(/leader · lock map \(1\)/);
      // The log wraps between words: the token stays whole.
      expect(map).toMatch(new RegExp(`token=${token}`));
      expect(map).not.toMatch(/…/);
      const colored = t.screenAnsi();
      expect(blackText(colored)).toEqual([]);
      // Nor white text (it vanishes on a light theme): requests in the log keep the terminal's colour.
      const requestRow = colored.split('\n').find((l) => l.includes('Request 10001: preempt'));
      expect(requestRow).toBeDefined();
      expect(requestRow).not.toMatch(/\u001b\[(?:[0-9;]*;)?37(?:;[0-9;]*)?m/);

      // The palette: whole titles, keys spelled out.
      t.keys('C-p');
      const pal = await t.until(/Command Palette/, 'the palette');
      expect(pal).toMatch(/Show command palette +Ctrl\+P \/ F1│/);
      expect(pal).toMatch(/Focus previous part +Shift\+Tab│/);
      t.keys('-l', 'kill the');
      await t.until(/│Kill the selected node \(a follower restarts; the leader fails over\) +k│/, 'the longest title, whole');
      t.keys('Escape');
      await t.until(/^(?![^]*Command Palette)/, 'the palette closed');

      // Attaching to another node: it says what will be lost, and waits for y.
      t.keys('Tab'); // the explorer
      await t.until(/ 3\/3 up │ ↑ select {2}Enter open {2}t attach {2}Tab next part {2}\^P palette {2}q quit/, 'the explorer focused, its hints');
      t.keys('Down', 't');
      await t.until(/Attach to follower-1\? y: yes \(ends this session\) · any other key: no/, 'the question in the status bar');
      const warned = t.screen();
      expect(warned).toMatch(/Attaching to follower-1 closes this terminal's/);
      expect(warned).toMatch(/client 10001/);
      expect(warned).toMatch(/1 session lock/);
      expect(warned).toMatch(/Press y to attach, any other key to stay\./);
      t.keys('n');
      await t.until(/\(stayed on leader\)/, 'no: it stays');
      const c = await LineClient.open(ports['follower-2'] as number);
      clients.push(c);
      expect(await c.ask(`check ${name}`)).toBe(`CheckLock:Lock:10001 token=${token}`);
      t.keys('t');
      await t.until(/Attach to follower-1\?/, 'asked again');
      t.keys('y');
      await t.until(/TERMINAL \(follower-1\)[^]*connected to follower-1 at 127\.0\.0\.1:\d+, client_id:/, 'attached');
      await eventually(async () => (await c.ask(`check ${name}`)) === 'CheckLock:Free', 'the session lock released [LP-8]');
      t.keys('q');
      expect(await t.exitStatus()).toBe(0);

      // An 8-colour terminal: secondary text keeps the default colour (blessed would draw gray as black).
      t.start(`env TERM=xterm ${process.execPath} ${CLI} up --followers 2 --port 0`);
      await t.until(/● follower-2 up/, 'three nodes up, 8 colours');
      const ansi = t.screenAnsi();
      expect(blackText(ansi)).toEqual([]);
      expect(ansi).not.toMatch(/\u001b\[90m/);
      t.keys('q');
      expect(await t.exitStatus()).toBe(0);
    } finally {
      for (const c of clients) c.close();
      t.kill();
    }
  });
});
