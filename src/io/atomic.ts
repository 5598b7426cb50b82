/**
 * Atomic file writes (host-side): the bytes go to a temporary file in the destination's own folder
 * (same filesystem, so the rename is atomic), which is fsynced, closed and renamed over the
 * destination; then the folder is fsynced so the rename itself survives a power loss. A reader sees
 * either the old file or the complete new one, never a torn write, and a crash (or SIGKILL) during
 * the write leaves the previous file untouched plus, at worst, a stray `.<name>.tmp-<pid>-*` file
 * that `removeStaleTemps` cleans up (the training loop calls it on its run folder at start, the
 * encoder cache on its shard folders when opened, both sparing temporaries of living writers).
 *
 * `durable: false` skips both fsyncs (still atomic against concurrent readers and process crashes,
 * not against power loss): for caches whose entries carry their own checksums.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** fsync the file and its folder (default true). */
  durable?: boolean;
  /** Create the folder when missing (default true). */
  mkdir?: boolean;
  /**
   * Test hook: called after the data is written to the temporary file and before the rename.
   * Throwing from it simulates a crash mid-write (the temporary file is then removed).
   */
  beforeRename?: (tempPath: string) => void;
}

let counter = 0;

/** The temporary name used for `path` (same folder, hidden, unique per process and call). */
export function tempPathFor(path: string): string {
  const rand = Math.floor(Math.random() * 0x100000000)
    .toString(16)
    .padStart(8, '0');
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${(counter++).toString(36)}-${rand}`);
}

function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    // Some filesystems refuse fsync on a directory (EISDIR/EINVAL/EPERM): nothing more can be done.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw e;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Writes `chunks` (concatenated) to `path` atomically; see the file comment. */
export function writeFileAtomic(
  path: string,
  data: Uint8Array | string | readonly Uint8Array[],
  opts: AtomicWriteOptions = {},
): void {
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  if (opts.mkdir ?? true) mkdirSync(dir, { recursive: true });
  const chunks: Uint8Array[] =
    typeof data === 'string'
      ? [new TextEncoder().encode(data)]
      : data instanceof Uint8Array
        ? [data]
        : [...data];
  const tmp = tempPathFor(path);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
    }
    if (durable) fsyncSync(fd);
    closeSync(fd);
    fd = null;
    opts.beforeRename?.(tmp);
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw new Error(`cannot write ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (durable) fsyncDir(dir);
}

/** Whether a process with this pid exists (signal 0 probes without signalling). */
function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes leftover temporary files of `name` (or of every file, when omitted) in `dir` that an
 * interrupted writer left behind. With `deadWritersOnly`, a temporary whose writer (the pid in its
 * name) is still running is kept: use it on folders that other processes may be writing to.
 * Returns the removed paths.
 */
export function removeStaleTemps(
  dir: string,
  name?: string,
  opts: { deadWritersOnly?: boolean } = {},
): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const prefix = name === undefined ? '.' : `.${name}.tmp-`;
  const removed: string[] = [];
  for (const f of entries) {
    if (!f.startsWith(prefix)) continue;
    const m = /\.tmp-(\d+)-/.exec(f);
    if (!m) continue;
    if (opts.deadWritersOnly && pidAlive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dir, f));
      removed.push(join(dir, f));
    } catch {
      // raced with another cleaner
    }
  }
  return removed;
}
