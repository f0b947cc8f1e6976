/**
 * Path and name validation. Paths are absolute, '/'-separated; components must be valid names:
 * not empty, not '.' or '..', no '/' or NUL (EINVAL), at most metaLimits.nameBytesMax bytes
 * (ENAMETOOLONG). Repeated and trailing slashes are tolerated, as POSIX does.
 */
import { MillpondError } from '../errors.js';
import { metaLimits } from '../limits.js';

export function validateName(name: string): string {
  if (typeof name !== 'string') throw new MillpondError('EINVAL', 'name must be a string');
  if (name.length === 0) throw new MillpondError('EINVAL', 'empty name');
  if (name === '.' || name === '..') throw new MillpondError('EINVAL', `invalid name ${JSON.stringify(name)}`);
  if (name.includes('/')) throw new MillpondError('EINVAL', `name contains '/': ${JSON.stringify(name)}`);
  if (name.includes('\0')) throw new MillpondError('EINVAL', 'name contains NUL');
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) throw new MillpondError('EINVAL', 'name is not valid unicode');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > metaLimits.nameBytesMax) throw new MillpondError('ENAMETOOLONG', `name of ${bytes} bytes exceeds ${metaLimits.nameBytesMax}`);
  return name;
}

/** The components of an absolute path; [] for the root. */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string') throw new MillpondError('EINVAL', 'path must be a string');
  const bytes = Buffer.byteLength(path, 'utf8');
  if (bytes > metaLimits.pathBytesMax) throw new MillpondError('ENAMETOOLONG', `path of ${bytes} bytes exceeds ${metaLimits.pathBytesMax}`);
  if (!path.startsWith('/')) throw new MillpondError('EINVAL', `path must be absolute: ${JSON.stringify(path)}`);
  if (path.includes('\0')) throw new MillpondError('EINVAL', 'path contains NUL');
  return path.split('/').filter((c) => c.length > 0).map(validateName);
}
