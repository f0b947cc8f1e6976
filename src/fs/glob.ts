/** Glob patterns over the namespace: `*` and `?` within one name, `**` across directories. */
import { MillpondError } from '../errors.js';
import { fsLimits } from '../limits.js';

/** A pattern split into path segments, each `**` or a matcher for one name. */
export type Segment = '**' | RegExp;

export function compileGlob(pattern: string): { root: string; segments: Segment[] } {
  if (!pattern.startsWith('/')) throw new MillpondError('EINVAL', `glob pattern must be absolute: ${pattern}`);
  const parts = pattern.split('/').filter((p) => p.length > 0);
  if (parts.length > fsLimits.globDepthMax) throw new MillpondError('EINVAL', 'glob pattern is too deep');
  const literal: string[] = [];
  while (parts.length > 0 && !/[*?]/.test(parts[0]!)) literal.push(parts.shift()!);
  const segments = parts.map((p): Segment => {
    if (p === '**') return '**';
    const source = p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
    return new RegExp(`^${source}$`);
  });
  return { root: `/${literal.join('/')}`, segments };
}
