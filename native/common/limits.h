// Every bound of the native core, in one place (TigerBeetle style: a limit on everything).
// Units are the last word of each name. TS mirrors the ones users see in src/limits.ts.
#pragma once

#include <cstddef>
#include <cstdint>

namespace millpond::limits {

// ---- chunks (design §2)
constexpr uint32_t kChunkSizeBytesMin = 64 * 1024;
constexpr uint32_t kChunkSizeBytesMax = 64 * 1024 * 1024;
constexpr uint32_t kChunkSizeBytesDefault = 4 * 1024 * 1024;
// Checksum granularity and O_DIRECT alignment: a read verifies only the blocks it touches.
constexpr uint32_t kChunkBlockBytes = 4096;
constexpr uint32_t kChunkBlocksMax = kChunkSizeBytesMax / kChunkBlockBytes;

// ---- chunk store
constexpr size_t kChunkStoreOpenFilesMax = 1024;     // cached read descriptors per store
constexpr size_t kChunkStoreLockStripes = 256;       // per-chunk write serialisation
constexpr size_t kChunkStoreStagingBytesMax = 512u << 20;  // memory for writes in flight
constexpr size_t kChunkStoreListEntriesMax = 65536;  // one List() call
constexpr uint32_t kDirectReadBytesMin = 256 * 1024; // smaller reads use the page cache

// ---- data-plane frames (native/transport/frame.h)
constexpr uint32_t kFrameHeaderBytes = 32;
constexpr uint32_t kFrameMetaBytesMax = 128 * 1024;   // control part of one message
constexpr uint32_t kFrameDataBytesMax = kChunkSizeBytesMax;  // payload part of one message
constexpr uint32_t kErrorMessageBytesMax = 1024;
constexpr uint32_t kBatchReadEntriesMax = 4096;
constexpr uint32_t kBatchReadBytesMax = 64 * 1024 * 1024;
constexpr uint32_t kListReplyEntriesMax = 2048;       // chunk metadata entries in one reply

// ---- data server
constexpr uint32_t kServerConnectionsMax = 1024;
constexpr uint32_t kServerIoThreadsDefault = 4;
constexpr uint32_t kServerIoThreadsMax = 64;
constexpr uint32_t kServerQueuedCallsMax = 8192;      // calls waiting for an I/O thread
constexpr size_t kServerBufferBytesMax = 1024u << 20; // request and reply buffers in use
constexpr uint32_t kServerFrameTimeoutMsDefault = 30000;  // a started frame must finish by then
constexpr int kListenBacklog = 512;

// ---- client
constexpr size_t kClientInflightBytesDefault = 256u << 20;
constexpr size_t kClientInflightBytesMax = 4096u << 20;
constexpr uint32_t kClientQueuedCallsMax = 65536;     // submitted, not yet answered, per client
constexpr uint32_t kClientTimeoutMsDefault = 30000;
constexpr uint32_t kClientConnectTimeoutMs = 5000;
constexpr uint32_t kClientServersMax = 4096;          // distinct server addresses per client
constexpr uint32_t kClientConnectionsPerServerMax = 16;
constexpr uint32_t kTimerTickMs = 100;                // how often deadlines are checked

// ---- sockets
constexpr int kSocketBufferBytes = 4 * 1024 * 1024;

}  // namespace millpond::limits
