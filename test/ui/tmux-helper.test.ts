/**
 * The tmux helper that the TUI tests rely on: the exit status it reports
 * is the program's, so an assertion on it can fail.
 */
import { describe, expect, it } from 'vitest';
import { hasTmux, Tmux } from '../helpers/tmux.js';

describe.skipIf(!hasTmux)('Tmux.exitStatus', () => {
  it('reports the command\'s own exit status, 0 and not', async () => {
    const t = new Tmux(40, 10);
    try {
      t.start('true');
      expect(await t.exitStatus()).toBe(0);
      t.start('sh -c "exit 3"');
      expect(await t.exitStatus()).toBe(3);
    } finally {
      t.kill();
    }
  });
});
