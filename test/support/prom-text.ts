/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for tests: every line must
 * be a `# HELP`, a `# TYPE` or a sample of the family its TYPE named just before; names, label
 * syntax (with escapes), values, duplicate series and histogram shape are checked, and any
 * deviation throws with the line number. Samples are returned by family.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, where: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  // prom-client writes NaN as "Nan" (a gauge with no sample yet); Prometheus reads values with
  // Go's strconv.ParseFloat, which takes NaN in any case, so any case is accepted here too.
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without =`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label value not quoted`);
    let value = '';
    let j = eq + 2;
    for (;; j++) {
      if (j >= text.length) throw new Error(`${where}: unterminated label value`);
      const c = text[j]!;
      if (c === '"') break;
      if (c === '\\') {
        const n = text[++j];
        if (n === 'n') value += '\n';
        else if (n === '\\' || n === '"') value += n;
        else throw new Error(`${where}: bad escape \\${n ?? ''}`);
      } else if (c === '\n') {
        throw new Error(`${where}: newline in label value`);
      } else value += c;
    }
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ',') throw new Error(`${where}: expected , between labels`);
      i++;
    }
  }
  return labels;
}

function splitSample(line: string, where: string): { name: string; labels: Record<string, string>; rest: string } {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  if (brace >= 0 && (space < 0 || brace < space)) {
    // The closing brace is the first } outside a quoted value.
    let inQuote = false;
    let k = brace + 1;
    for (; k < line.length; k++) {
      const c = line[k];
      if (inQuote && c === '\\') k++;
      else if (c === '"') inQuote = !inQuote;
      else if (!inQuote && c === '}') break;
    }
    if (k >= line.length) throw new Error(`${where}: unterminated labels`);
    return { name: line.slice(0, brace), labels: parseLabels(line.slice(brace + 1, k), where), rest: line.slice(k + 1) };
  }
  if (space < 0) throw new Error(`${where}: sample without value`);
  return { name: line.slice(0, space), labels: {}, rest: line.slice(space) };
}

export function parsePrometheusText(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition does not end with a newline');
  const families = new Map<string, Family>();
  const seriesSeen = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`${where}: malformed ${line}`);
        return; // a plain comment
      }
      const [, kind, name, rest] = m;
      if (!NAME.test(name!)) throw new Error(`${where}: bad metric name ${name}`);
      let f = families.get(name!);
      if (f && f !== current) throw new Error(`${where}: family ${name} appears twice`);
      if (!f) {
        f = { name: name!, type: 'untyped', help: '', samples: [] };
        families.set(name!, f);
      }
      current = f;
      if (kind === 'TYPE') {
        if (!TYPES.has(rest!)) throw new Error(`${where}: bad type ${rest}`);
        if (f.samples.length > 0) throw new Error(`${where}: TYPE after samples of ${name}`);
        f.type = rest as Family['type'];
      } else f.help = rest!;
      return;
    }
    const { name, labels, rest } = splitSample(line, where);
    if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
    const parts = rest.trim().split(/ +/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new Error(`${where}: expected "<name>{labels} <value> [timestamp]"`);
    const value = parseValue(parts[0]!, where);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) throw new Error(`${where}: bad timestamp`);
    if (!current) throw new Error(`${where}: sample ${name} before any TYPE`);
    const suffixes = current.type === 'histogram' ? ['_bucket', '_sum', '_count'] : current.type === 'summary' ? ['', '_sum', '_count'] : [''];
    if (!suffixes.some((s) => name === current!.name + s)) throw new Error(`${where}: sample ${name} outside its family ${current.name}`);
    if (current.type === 'histogram' && name.endsWith('_bucket') && labels.le === undefined) throw new Error(`${where}: bucket without le`);
    if (current.type === 'counter' && !(value >= 0)) throw new Error(`${where}: counter ${name} is ${value}`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (seriesSeen.has(key)) throw new Error(`${where}: series ${key} twice`);
    seriesSeen.add(key);
    current.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** Buckets ascend in le, counts never fall, +Inf is last and equals _count. */
function checkHistogram(f: Family): void {
  const groups = new Map<string, Sample[]>();
  const keyOf = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  for (const s of f.samples) {
    const k = keyOf(s.labels);
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  for (const [k, samples] of groups) {
    const buckets = samples.filter((s) => s.name.endsWith('_bucket'));
    const count = samples.find((s) => s.name === `${f.name}_count`);
    if (!count || !samples.some((s) => s.name === `${f.name}_sum`)) throw new Error(`${f.name}${k}: histogram without _sum or _count`);
    let lastLe = -Infinity;
    let lastCount = 0;
    for (const b of buckets) {
      const le = parseValue(b.labels.le!, f.name);
      if (!(le > lastLe)) throw new Error(`${f.name}${k}: buckets not ascending at le=${b.labels.le}`);
      if (b.value < lastCount) throw new Error(`${f.name}${k}: bucket count falls at le=${b.labels.le}`);
      lastLe = le;
      lastCount = b.value;
    }
    if (lastLe !== Infinity) throw new Error(`${f.name}${k}: no +Inf bucket`);
    if (lastCount !== count.value) throw new Error(`${f.name}${k}: +Inf bucket ${lastCount} != _count ${count.value}`);
  }
}

/** The sum of the samples of `family` named `name` whose labels include `labels`; 0 when there are none. */
export function sampleValue(families: Map<string, Family>, family: string, labels: Record<string, string> = {}, name = family): number {
  const f = families.get(family);
  if (!f) return 0;
  const hits = f.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return hits.reduce((a, s) => a + s.value, 0);
}
