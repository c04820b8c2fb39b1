#!/usr/bin/env node
/**
 * The `dlock` executable: the command (src/cli/main.ts) with the terminal UI
 * as its screens. The one place that picks a view: nothing under src/
 * imports ui/, and the TUI is loaded only by a command that shows it.
 */
import { runCli } from '../src/cli/main.js';

await runCli(process.argv, async () => {
  const { runTui, runView } = await import('./tui.js');
  const { EtcdSource } = await import('./source-etcd.js');
  return {
    up: runTui,
    attach: (source, term) => runView(new EtcdSource(source), term, 'dlock tui'),
  };
});
