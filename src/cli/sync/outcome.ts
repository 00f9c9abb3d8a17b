/** What a sync run did, as either side counts it. */
import type { Failure } from '../summary/format';

export interface SyncOutcome {
  /** Files now in place whose data moved in this run (whole or resumed). */
  files: number;
  /** Their sizes together. */
  bytes: number;
  /** File bytes that crossed the wire in this run (less than `bytes` when files resumed). */
  wireBytes: number;
  /** Files already there, unchanged: nothing sent. */
  unchanged: number;
  /** Directories and symbolic links made or already there. */
  dirs: number;
  links: number;
  failures: Failure[];
  /** Why the run stopped early, if it did. */
  interrupted: string | undefined;
}

export function emptyOutcome(): SyncOutcome {
  return { files: 0, bytes: 0, wireBytes: 0, unchanged: 0, dirs: 0, links: 0, failures: [], interrupted: undefined };
}
