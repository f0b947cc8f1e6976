#!/usr/bin/env node
// Appends DuckDB's extension metadata footer (534 bytes) to a freshly linked extension:
// a 22-byte start marker, eight 32-byte fields stored last to first (metadata format "4",
// platform, DuckDB version, extension version, ABI "CPP", three unused), and a 256-byte
// signature left zero (unsigned: loaded with allow_unsigned_extensions).
// usage: node append-duckdb-metadata.mjs <file> <duckdb version, e.g. v1.4.4> [platform] [extension version]
import { appendFileSync } from 'node:fs';

const [file, duckdbVersion, platform = 'linux_amd64', extensionVersion = 'v0.1.0'] = process.argv.slice(2);
if (!file || !duckdbVersion) {
  console.error('usage: append-duckdb-metadata.mjs <file> <duckdb version> [platform] [extension version]');
  process.exit(2);
}
const field = (text) => {
  const b = Buffer.alloc(32);
  b.write(text, 'ascii');
  return b;
};
const fields = ['4', platform, duckdbVersion, extensionVersion, 'CPP', '', '', ''].map(field).reverse();
const marker = Buffer.concat([Buffer.from([0, 147, 4, 16]), Buffer.from('duckdb_signature'), Buffer.from([128, 4])]);
const footer = Buffer.concat([marker, ...fields, Buffer.alloc(256)]);
if (footer.length !== 534) throw new Error(`footer is ${footer.length} bytes, not 534`);
appendFileSync(file, footer);
console.log(`${file}: DuckDB ${duckdbVersion} ${platform} footer appended`);
