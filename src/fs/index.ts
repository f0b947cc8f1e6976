export { connect, FileSystem, FileHandle, type ConnectOptions, type OpenMode } from './file-system.js';
export { Stats, Dirent } from './stats.js';
export { fileChains, locate, chainOfChunk } from './layout.js';
