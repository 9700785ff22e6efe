// The three kinds of failure, kept apart (redb, LevelDB, better-sqlite3):
//   misuse      -> MisuseError (a TypeError) or BoundsError (a RangeError): the caller's mistake,
//                  nothing was changed;
//   I/O failure -> IoError: the operating system refused; `code` is the errno name;
//   corruption  -> CorruptionError: bytes on a medium are not what we wrote; names file and offset.
// Every error carries a stable string `code` that callers may switch on.

/** Stable codes of misuse errors. */
export type MisuseCode =
  | 'STORE_CLOSED'
  | 'SNAPSHOT_CLOSED'
  | 'REGION_CLOSED'
  | 'FILE_CLOSED'
  | 'INVALID_ARGUMENT'
  | 'INVALID_SCHEMA'
  | 'INVALID_EVENT'
  | 'OUT_OF_RANGE'
  | 'STORE_LOCKED'
  | 'READ_ONLY'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'CONSUMER_BUSY';

/** A caller's mistake of kind: wrong type, closed handle, unknown name. */
export class MisuseError extends TypeError {
  override readonly name = 'MisuseError';
  constructor(
    readonly code: MisuseCode,
    message: string,
  ) {
    super(message);
  }
}

/** A caller's mistake of value: out-of-range number, offset past the end. */
export class BoundsError extends RangeError {
  override readonly name = 'BoundsError';
  readonly code = 'OUT_OF_RANGE' as const;
  constructor(message: string) {
    super(message);
  }
}

/** The operating system (or an injected fault) refused an operation. */
export class IoError extends Error {
  override readonly name = 'IoError';
  constructor(
    /** errno name, e.g. 'EIO', 'ENOSPC', 'ENOENT'. */
    readonly code: string,
    readonly syscall: string,
    readonly path: string,
    message?: string,
  ) {
    super(message ?? `${code}: ${syscall} failed on ${path}`);
  }
}

/** Bytes on a medium are not what chronotier wrote (torn, flipped, foreign). */
export class CorruptionError extends Error {
  override readonly name = 'CorruptionError';
  readonly code = 'CORRUPTION' as const;
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`corruption in ${file} at offset ${offset}: ${reason}`);
  }
}

/** A broken internal invariant: a bug in chronotier, never a user mistake. */
export class InvariantError extends Error {
  override readonly name = 'InvariantError';
  readonly code = 'INVARIANT' as const;
}

/** Fails loudly when an internal invariant does not hold. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new InvariantError(typeof message === 'string' ? message : message());
  }
}

/** Converts a Node.js system error into an IoError; rethrows anything else untouched. */
export function toIoError(err: unknown, syscall: string, path: string): never {
  if (err instanceof IoError) throw err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) {
    throw new IoError(code, syscall, path, `${code}: ${syscall} failed on ${path}: ${(err as Error).message}`);
  }
  throw err;
}

/** REQUIRES nothing; returns `value` if it is a non-negative safe integer, else throws BoundsError. */
export function checkIndex(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BoundsError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}
