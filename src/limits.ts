/**
 * Bounds users see from TypeScript. They mirror native/common/limits.h, which is the
 * authority; a test checks the two agree.
 */
export const limits = {
  chunkSizeBytesMin: 64 * 1024,
  chunkSizeBytesMax: 64 * 1024 * 1024,
  chunkSizeBytesDefault: 4 * 1024 * 1024,
  chunkBlockBytes: 4096,
  batchReadEntriesMax: 4096,
  batchReadBytesMax: 64 * 1024 * 1024,
  listReplyEntriesMax: 2048,
  clientInflightBytesDefault: 256 * 1024 * 1024,
  clientInflightBytesMax: 4096 * 1024 * 1024,
  clientTimeoutMsDefault: 30_000,
  clientConnectionsPerServerMax: 16,
  serverIoThreadsDefault: 4,
  serverIoThreadsMax: 64,
  serverFrameTimeoutMsDefault: 30_000,
} as const;
