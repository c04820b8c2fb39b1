/**
 * The in-process manager's configuration on disk (`dlock up --replication
 * group --data-dir`): one file, replaced whole (written to a temporary
 * file, fsynced, renamed, the directory fsynced) before a configuration is
 * stored in memory (ConfigStore.beforeStore), so no node learns a version
 * the disk could lose. A restart reads it back: the members' runs there are
 * the ones whose logs the data dir keeps (replaceRuns).
 *
 * The file is one record as store-file.ts writes them (a CRC, a space,
 * the configuration's canonical JSON); one that does not read stops the
 * start with the reason.
 *
 * Threading: the main thread; calls are synchronous.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { record, StoreError, unrecord, writeAtomically } from '../store/store-file.js';
import { ConfigError, decodeConfig, encodeConfig, type GroupConfig } from './config.js';

/** The configuration in `file`, or null when there is none yet. StoreError when it does not read. */
export function readConfigFile(file: string): GroupConfig | null {
  if (!existsSync(file)) return null;
  const json = unrecord(readFileSync(file, 'utf8').replace(/\n$/, ''));
  try {
    if (json === null) throw new ConfigError(`${file} is damaged (its checksum does not match)`);
    return decodeConfig(json, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new StoreError(`${err.message}: the group's configuration cannot be read back; move the data dir away to start empty`);
  }
}

/** Replace the configuration in `file` with `c`, durably. */
export function writeConfigFile(file: string, c: GroupConfig): void {
  writeAtomically(dirname(file), basename(file), record(encodeConfig(c)));
}
