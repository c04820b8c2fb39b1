/**
 * Fencing tokens by configuration version [LP-7]: the tokens granted
 * while version `v` is stored lie in `[v * 2^32, (v + 1) * 2^32)`.
 *
 * The contract, with the primary's duties that keep it
 * (replication/replication-group.ts):
 *  - a primary logs `floor(v)` (a `floor` command) before anything else it
 *    sequences in version v, so every grant in v is at least v * 2^32;
 *  - it grants fewer than SPACE tokens in one version: past REFRESH_AT it
 *    has the manager store the same configuration under the next version
 *    (and logs that version's floor);
 *  - a version is stored before anything is sequenced in it, and the
 *    manager's versions only rise.
 * So a token granted in version v is below every token of a later one,
 * whatever log was lost in between: even when every member of a
 * configuration is lost without a data dir, the next group's tokens
 * start above all of them, since its version is higher.
 *
 * Pure. Threading: any.
 */

/** Tokens in one version's space. */
export const SPACE = 2 ** 32;

/** Past this many grants in one version the primary moves to the next one (half the space: a move takes a manager round, grants go on meanwhile). */
export const REFRESH_AT = 2 ** 31;

/** The highest version whose space fits in a safe integer. */
export const MAX_VERSION = Math.floor(Number.MAX_SAFE_INTEGER / SPACE) - 1;

/** The first token of version `v`'s space. */
export function floorOf(version: number): number {
  if (!Number.isSafeInteger(version) || version < 0 || version > MAX_VERSION) throw new TokenSpaceError(version);
  return version === 0 ? 1 : version * SPACE;
}

/** Whether a table whose next token is `next` has used enough of version `v`'s space that the primary should move to the next version. */
export function spaceRunningOut(version: number, next: number): boolean {
  return version <= MAX_VERSION && next - floorOf(version) >= REFRESH_AT;
}

/** The configuration version is past the last whose tokens fit in a safe integer. */
export class TokenSpaceError extends Error {
  constructor(readonly version: number) {
    super(`configuration version ${version} is past ${MAX_VERSION}, the last whose fencing tokens fit in a safe integer: this cluster can grant no more tokens`);
    this.name = 'TokenSpaceError';
  }
}
