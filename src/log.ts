/**
 * The daemons' log (design §14): one line per event on stderr.
 *
 *   JSON (default when stderr is not a terminal; MILLPOND_LOG_FORMAT=json):
 *     {"time":"2026-12-01T23:50:01.123Z","level":"warn","component":"storage","host":"h1","pid":42,"message":"...", ...fields}
 *   human (default on a terminal; MILLPOND_LOG_FORMAT=human):
 *     2026-12-01T23:50:01.123Z WARN  storage: ... key=value
 *
 * Levels debug < info < warn < error; lines below MILLPOND_LOG_LEVEL (default info; the CLI's
 * --verbose sets debug) are dropped. The native core (native/common/log.*) writes the same shape
 * and reads the same variables, so a daemon's stderr is one stream of one format.
 *
 * Contract: no secret reaches the log. Fields named like a secret (token, secret, password,
 * authorization, secretKey, ...) are written as "[redacted]", and the message and string fields
 * are scrubbed of what looks like one: token secrets (`mpt1.<uid>.<id>.<secret>`), passwords in
 * URLs (`scheme://user:pass@`), bearer credentials and S3 signatures.
 * stdout is not the log: daemons print their readiness lines (`listening ...`) there.
 */
import { hostname } from 'node:os';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

const kLevelRank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines carry `fields` too (e.g. { nodeId }). */
  with(fields: LogFields): Logger;
}

/** Where lines go and how they look; read from the environment once per process (tests may reset). */
interface Sink {
  minRank: number;
  human: boolean;
  host: string;
  write: (line: string) => void;
}

let sink: Sink | undefined;

function envSink(): Sink {
  const level = (process.env.MILLPOND_LOG_LEVEL ?? 'info').toLowerCase();
  const format = process.env.MILLPOND_LOG_FORMAT?.toLowerCase();
  return {
    minRank: kLevelRank[level as LogLevel] ?? kLevelRank.info,
    human: format === 'human' || (format !== 'json' && process.stderr.isTTY === true),
    host: hostname(),
    write: (line) => process.stderr.write(line),
  };
}

/** Forgets the settings read from the environment (the CLI's --verbose changes them at start). */
export function resetLogSettings(): void {
  sink = undefined;
}

const kSecretField = /token|secret|password|passwd|authorization|credential|privatekey|secretkey/i;

/** `text` with what looks like a secret replaced (see the contract above). */
export function scrubSecrets(text: string): string {
  return text
    .replace(/\b(mpt1\.\d+\.[0-9a-f]{16}\.)[A-Za-z0-9_-]+/g, '$1***')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@/\s]+@/gi, '$1***@')
    .replace(/\b(Bearer\s+)\S+/gi, '$1***')
    .replace(/(X-Amz-Signature=)[0-9a-f]+/gi, '$1***')
    .replace(/(Signature=)[0-9a-f]{64}/g, '$1***');
}

function cleanFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    if (kSecretField.test(k)) out[k] = '[redacted]';
    else if (typeof v === 'string') out[k] = scrubSecrets(v);
    else if (v instanceof Error) out[k] = scrubSecrets(v.message);
    else if (typeof v === 'bigint') out[k] = v.toString();
    else out[k] = v;
  }
  return out;
}

function humanValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

function emit(level: LogLevel, component: string, base: LogFields, message: string, fields: LogFields | undefined): void {
  const s = (sink ??= envSink());
  if (kLevelRank[level] < s.minRank) return;
  const time = new Date().toISOString();
  const extra = cleanFields({ ...base, ...fields });
  const text = scrubSecrets(message);
  if (s.human) {
    const tail = Object.entries(extra).map(([k, v]) => ` ${k}=${humanValue(v)}`).join('');
    s.write(`${time} ${level.toUpperCase().padEnd(5)} ${component}: ${text}${tail}\n`);
  } else {
    s.write(`${JSON.stringify({ time, level, component, host: s.host, pid: process.pid, message: text, ...extra })}\n`);
  }
}

/** The logger of one component ("mgmtd", "meta", "storage", "executor", "s3", "up", ...). */
export function logger(component: string, base: LogFields = {}): Logger {
  return {
    debug: (m, f) => emit('debug', component, base, m, f),
    info: (m, f) => emit('info', component, base, m, f),
    warn: (m, f) => emit('warn', component, base, m, f),
    error: (m, f) => emit('error', component, base, m, f),
    with: (more) => logger(component, { ...base, ...more }),
  };
}
