/**
 * Argument scanning shared by the CLIs: `--flag value` and `--flag=value`, `-h`/`--help`, and the
 * usage errors that make a CLI print its help and exit 2.
 */

/** A command line that cannot be parsed; the CLIs print the message and their usage, exit 2. */
export class UsageError extends Error {}

export interface FlagToken {
  /** The argument as given (`--lr=3e-3` or `--lr`). */
  raw: string;
  /** The flag name (`--lr`). */
  flag: string;
  /** The flag's value (`=value` or the next argument, which it consumes); undefined at the end. */
  takes(): string | undefined;
  /** As takes(), but a missing or empty value is a UsageError. */
  str(): string;
}

/** Calls `on` for every argument in order; returns 'help' when -h/--help is among them. */
export function scanArgs(argv: readonly string[], on: (t: FlagToken) => void): 'help' | null {
  for (let i = 0; i < argv.length; i++) {
    const raw = argv[i]!;
    if (raw === '-h' || raw === '--help') return 'help';
    const eq = raw.indexOf('=');
    const inline = raw.startsWith('--') && eq > 0;
    const flag = inline ? raw.slice(0, eq) : raw;
    const takes = () => (inline ? raw.slice(eq + 1) : argv[++i]);
    const str = () => {
      const v = takes();
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    on({ raw, flag, takes, str });
  }
  return null;
}

/** An integer flag value >= min. */
export function intArg(flag: string, v: string | undefined, min = 1): number {
  if (v === undefined) throw new UsageError(`${flag} needs a value`);
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${flag} must be an integer >= ${min}, got '${v}'`);
  return n;
}

/**
 * Parses `argv` with `parse`; prints the usage for --help (exit code 0) or the message and the
 * usage for a UsageError (exit code 2). Returns the parsed arguments or that exit code.
 */
export function parseOrExitCode<T>(
  name: string,
  usage: string,
  argv: readonly string[],
  parse: (argv: readonly string[]) => T | 'help',
): T | number {
  try {
    const p = parse(argv);
    if (p !== 'help') return p;
    console.log(usage);
    return 0;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`${name}: ${e.message}\n\n${usage}`);
    return 2;
  }
}
