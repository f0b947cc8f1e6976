/**
 * XML in and out through fast-xml-parser (a kept parser: no native code, validates, and
 * builds documents from plain objects). S3's documents are small and flat; requests are
 * bounded by s3Limits.xmlBodyBytesMax before they get here.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { S3Error } from './errors.js';

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@', suppressEmptyNode: false, processEntities: true });
const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false, // keys like "007" stay strings
  trimValues: false,
  isArray: (name) => name === 'Object' || name === 'Part',
  processEntities: true,
  htmlEntities: false,
});

/** `<?xml ...?><root xmlns=...>body</root>`. */
export function document(root: string, body: Record<string, unknown>): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ [root]: { '@xmlns': NS, ...body } })}`;
}

export function errorDocument(code: string, message: string, requestId: string, extra: Record<string, string>): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ Error: { Code: code, Message: message, ...extra, RequestId: requestId } })}`;
}

/** Parses a request document; anything not well-formed, or without `root`, is MalformedXML. */
export function parseDocument(text: string, root: string): Record<string, unknown> {
  if (XMLValidator.validate(text) !== true) throw new S3Error('MalformedXML', 'The XML you provided was not well-formed');
  const parsed = parser.parse(text) as Record<string, unknown>;
  const body = parsed[root];
  if (body === undefined) throw new S3Error('MalformedXML', `expected a <${root}> document`);
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
}
