/**
 * The one error class of millpond. `code` is stable and machine-readable; the native core
 * builds these from its Status (native/common/status.h keeps the same list).
 */
export const ERROR_CODES = [
  'ENOENT', 'EEXIST', 'EINVAL', 'EIO', 'ENOSPC', 'ECHUNK_CORRUPT', 'ETIMEDOUT', 'EPROTO',
  'EMSGSIZE', 'ECONNREFUSED', 'ECONNRESET', 'ECLOSED', 'EBUSY', 'ENOTSUP', 'ENODEV', 'ESTALE',
  'ENOTCOMMITTED', 'EACCES', 'EINTERNAL',
  // Namespace (meta service); POSIX meanings.
  'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'ENAMETOOLONG', 'EPERM', 'EBADF', 'EMLINK',
  // Cluster (mgmtd): this mgmtd is a standby; the caller tries the next address.
  'ENOTPRIMARY',
  // Engine (src/engine): a task's SQL failed (the error carries the SQL and the partition);
  // a task failed on every attempt (its worker died, or an I/O error repeated).
  'ESQL', 'ETASK',
  // Security: the caller is not authenticated (no, wrong or expired key, token or capability).
  'EAUTH',
  // The data servers encrypt their connections (cluster flag encryptData) and this client
  // does not (it refused, or has no libsodium).
  'EENCRYPT',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class MillpondError extends Error {
  readonly code: ErrorCode;
  /** Set by the FileSystem API, as node:fs sets them: the path and the call that failed. */
  path?: string;
  syscall?: string;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'MillpondError';
    this.code = code;
  }
}
