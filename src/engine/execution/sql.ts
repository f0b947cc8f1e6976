/** Quoting for SQL text built here: string literals and identifiers (DuckDB's rules). */

export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

export function sqlIdentifier(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}
