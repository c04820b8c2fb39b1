/**
 * Fencing tokens by configuration version [LP-7]: version `v` (from 1)
 * owns the tokens `[floorOf(v), floorOf(v + 1))`, where
 * `floorOf(v) = (v - 1) * 2^32 + 1`; so a new group's first tokens are
 * 1, 2, 3, as the walkthrough shows.
 *
 * The contract, with the primary's duties that keep it
 * (replication/replication-group.ts):
 *  - every token granted while version v is stored is below floorOf(v + 1):
 *    past REFRESH_AT grants above the floor of the version stored, the
 *    primary has the manager store the same configuration under the next
 *    version, and it holds writes while its next token is within 2^30 of
 *    that bound;
 *  - a primary that takes over in version v, or moves to v for space,
 *    logs `floor(v)` (a `floor` command) before anything else it sequences
 *    there, so its grants are at least floorOf(v) whatever its table held;
 *    a primary that goes on into a new version for a change of members
 *    keeps counting (its grants are still below the new bound);
 *  - a version is stored before anything is sequenced in it, and the
 *    manager's versions only rise.
 * So a token granted in version v is below every token granted in a
 * later version whose primary took over, whatever log was lost in
 * between: even when every member of a configuration is lost without a
 * data dir, the next group's tokens start above all of them, since its
 * version is higher and its primary logs that version's floor.
 *
 * Pure. Threading: any.
 */

/** Tokens in one version's space. */
export const SPACE = 2 ** 32;

/** Past this many grants in one version the primary moves to the next one (half the space: a move takes a manager round, grants go on meanwhile). */
export const REFRESH_AT = 2 ** 31;

/** The highest version whose space fits in a safe integer. */
export const MAX_VERSION = Math.floor(Number.MAX_SAFE_INTEGER / SPACE);

/** The first token of version `v`'s space (version 0, none stored yet: 1, as version 1). */
export function floorOf(version: number): number {
  if (!Number.isSafeInteger(version) || version < 0 || version > MAX_VERSION) throw new TokenSpaceError(version);
  return version === 0 ? 1 : (version - 1) * SPACE + 1;
}

/** The first version whose space lies wholly at or above `token`. */
export function firstVersionAbove(token: number): number {
  return token <= 1 ? 1 : Math.ceil((token - 1) / SPACE) + 1;
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
