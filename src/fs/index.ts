export { connect, FileSystem, FileHandle, type ConnectOptions, type OpenMode } from './file-system.js';
export type { DataClientTuning } from './file-data.js';
export type { DataClientCounters } from '../native/binding.js';
export { Stats, Dirent } from './stats.js';
export { fileChains, locate, chainOfChunk } from './layout.js';
