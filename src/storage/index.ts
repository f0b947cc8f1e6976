export { StorageDaemon, type StorageDaemonOptions } from './daemon.js';
export { resync, type ResyncStats, type ResyncOptions } from './resync.js';
export { scrub, type ScrubStats, type ScrubOptions } from './scrub.js';
export { collectGarbage, startGarbageCollector, type GarbageSource, type GarbageStats } from './garbage.js';
