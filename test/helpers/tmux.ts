/**
 * tmux for TUI tests: a private server (its own socket), one session of a
 * fixed size, the command under test in its pane, and the screen as text.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './line-client.js';

export const hasTmux = spawnSync('sh', ['-c', 'command -v tmux']).status === 0;

export class Tmux {
  private readonly sock = `dlock-tui-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

  constructor(cols: number, rows: number) {
    this.run('-f', '/dev/null', 'new-session', '-d', '-s', 't', '-x', String(cols), '-y', String(rows));
    this.run('set-option', '-t', 't', 'remain-on-exit', 'on');
  }

  run(...args: string[]): string {
    const r = spawnSync('tmux', ['-L', this.sock, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /**
   * Run `cmd` in the pane, through a shell that writes its exit status to
   * a file when it ends: tmux can mark a pane dead before it has the
   * status, and then reports none (exitStatus reads the file).
   * `cmd` must not contain single quotes.
   */
  start(cmd: string): void {
    if (cmd.includes("'")) throw new Error(`Tmux.start: no single quotes in the command: ${cmd}`);
    rmSync(this.statusFile, { force: true });
    this.run('respawn-pane', '-k', '-t', 't', `sh -c '${cmd}; echo $? > ${this.statusFile}'`);
  }

  /** Where start()'s shell writes the command's exit status. */
  private readonly statusFile = join(tmpdir(), `${this.sock}.status`);

  screen(): string {
    return this.run('capture-pane', '-p', '-t', 't');
  }

  /** The screen with its SGR colour sequences (capture-pane -e). */
  screenAnsi(): string {
    return this.run('capture-pane', '-e', '-p', '-t', 't');
  }

  keys(...keys: string[]): void {
    this.run('send-keys', '-t', 't', ...keys);
  }

  /** Wait until the screen matches; the error shows the screen. */
  async until(re: RegExp, what: string, timeoutMs = 10_000): Promise<string> {
    try {
      await eventually(() => re.test(this.screen()), what, timeoutMs, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${this.screen()}`);
    }
    return this.screen();
  }

  /**
   * A mouse click at 1-based (x, y), as an xterm SGR press and release.
   * Sent separately: blessed reads one mouse sequence per input chunk.
   */
  click(x: number, y: number): void {
    this.run('send-keys', '-t', 't', '-l', `\u001b[<0;${x};${y}M`);
    this.run('send-keys', '-t', 't', '-l', `\u001b[<0;${x};${y}m`);
  }

  /**
   * Click until the screen shows `re`: blessed reads one mouse sequence per
   * input chunk, and on a loaded machine tmux can deliver the press and the
   * release in one chunk, which loses the click. A lost click is sent again.
   */
  async clickUntil(x: number, y: number, re: RegExp, what: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      this.click(x, y);
      try {
        return await this.until(re, what, attempt < 3 ? 2000 : 10_000);
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  }

  /** Open the palette, type `query`, wait until it shows, and run the first match. */
  async palette(query: string): Promise<void> {
    this.keys('C-p');
    await this.until(/Command Palette/, 'the palette');
    this.keys(query);
    await this.until(new RegExp(`> ${query}`), `the query "${query}"`);
    this.keys('Enter');
    // Taken before anything else is sent: keys and clicks sent while the
    // TUI is busy arrive together, and a query left open takes the next key.
    await this.until(/^(?![\s\S]*Command Palette)/, `the palette to close after "${query}"`);
  }

  /** The exit status of the pane's command once it has ended, as start()'s shell wrote it. */
  async exitStatus(timeoutMs = 10_000): Promise<number> {
    let text = '';
    await eventually(() => (text = existsSync(this.statusFile) ? readFileSync(this.statusFile, 'utf8') : '').endsWith('\n'), 'the program to exit', timeoutMs, 50).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n--- screen ---\n${this.screen()}`);
    });
    return Number(text.trim());
  }

  kill(): void {
    spawnSync('tmux', ['-L', this.sock, 'kill-server']);
  }
}
