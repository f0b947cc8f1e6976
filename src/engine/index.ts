export { init, Session } from './session.js';
export { DataFrame, type Row } from './dataframe.js';
export type { InitOptions } from './options.js';
export type { DataRootSpec } from './partition/root.js';
export type { JobSummary } from './execution/progress.js';
