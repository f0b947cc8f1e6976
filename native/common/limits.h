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
// Reused buffers this large or larger are aligned to it and advised to use transparent huge
// pages (common/buffer_pool.cc).
constexpr size_t kHugePageBytes = size_t{2} << 20;

// ---- chunk store
constexpr size_t kChunkStoreOpenFilesMax = 1024;     // cached read descriptors per store
constexpr size_t kChunkStoreLockStripes = 256;       // per-chunk write serialisation
constexpr size_t kChunkStoreStagingBytesMax = size_t{512} << 20;  // memory for writes in flight
constexpr size_t kChunkStoreListEntriesMax = 65536;  // one List() call
constexpr int kChunkStoreReadRetriesMax = 8;         // a read racing renames of its version
constexpr uint32_t kDirectReadBytesMin = 256 * 1024; // smaller reads use the page cache

// ---- metrics (common/metrics.h, design §14): fixed latency bucket upper bounds, microseconds,
// ascending; a last +Inf bucket is implied. The TS histograms (meta, S3) have their own bounds in
// src/limits.ts (metricsLimits.latencyBucketsMs): their requests are slower than a chunk read.
constexpr uint64_t kDataLatencyBucketsUs[] = {50,     100,    250,    500,     1000,    2500,   5000,
                                              10000,  25000,  50000,  100000,  250000,  500000, 1000000,
                                              2500000, 10000000};
constexpr size_t kDataLatencyBucketCount = sizeof kDataLatencyBucketsUs / sizeof kDataLatencyBucketsUs[0];

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
constexpr size_t kServerBufferBytesMax = size_t{1024} << 20; // request and reply buffers in use
constexpr uint32_t kServerFrameTimeoutMsDefault = 30000;  // a started frame must finish by then
constexpr uint32_t kServerBufferWaitMs = 5000;        // for request/reply buffer memory
// A payload being received takes buffer memory at most this far ahead of the bytes that
// arrived (none before its first byte): announcing a write reserves nothing.
constexpr uint32_t kServerReceiveAheadBytes = 1024 * 1024;
constexpr int kListenBacklog = 512;
constexpr size_t kServerAppliedWritesMax = 65536;    // (clientId, requestId) remembered at a head
// (clientId, requestId) of the latest writes of a chunk, kept in each version file: a retry
// after a head restart or failover finds its write there (common/chunk_format.h).
constexpr uint32_t kChunkRequestsRemembered = 16;
constexpr uint32_t kChainsPerServerMax = 65536;

// ---- short-circuit local reads (storage/local_read_server.h, client/local_reader.h)
constexpr uint32_t kLocalReadConnectionsMax = 256;    // per server: one thread each
constexpr uint32_t kLocalReadThreadsDefault = 8;      // per client: reads in flight on this host
constexpr uint32_t kLocalReadThreadsMax = 64;
constexpr uint32_t kLocalReadQueuedMax = 4096;        // per client: beyond it reads go over TCP
constexpr uint32_t kLocalIdleConnectionsMax = 16;     // per client and server, kept for reuse
constexpr uint32_t kLocalProbeIntervalMs = 1000;      // a failed probe of a server is retried after
constexpr size_t kLocalReadStagingBytesMax = size_t{256} << 20;  // per client: O_DIRECT and unaligned reads

// ---- client
constexpr size_t kClientInflightBytesDefault = size_t{256} << 20;
constexpr size_t kClientInflightBytesMax = size_t{4096} << 20;
constexpr uint32_t kClientQueuedCallsMax = 65536;     // submitted, not yet answered, per client
// One chunk request. Shorter than the write retry window around it (kWriteRetryMsDefault):
// a request stuck at a paused server must leave the window room to go elsewhere.
constexpr uint32_t kClientTimeoutMsDefault = 10000;
constexpr uint32_t kClientConnectTimeoutMs = 5000;
// A chain write's forward from one target to its successor, inside the writer's request to
// the head: it fails (and the head answers) before the writer gives up on the head.
constexpr uint32_t kChainForwardTimeoutMs = 5000;
constexpr uint32_t kClientServersMax = 4096;          // distinct server addresses per client
constexpr uint32_t kClientConnectionsPerServerMax = 16;
constexpr uint32_t kCapabilityRenewRetryMs = 1000;     // after a failed renewal of a file's capability
constexpr uint32_t kTimerTickMs = 100;                // how often deadlines are checked

// ---- sockets
constexpr int kSocketBufferBytes = 4 * 1024 * 1024;

// ---- rdma (native/transport/rdma)
// Control messages (header + meta + the RDMA descriptor of the data buffers) travel by SEND
// into pre-posted receive slots; data moves by RDMA READ/WRITE between registered blocks.
constexpr uint32_t kRdmaQueueDepth = 16;              // requests in flight per queue pair
constexpr uint32_t kRdmaServerCallSlots = 2 * kRdmaQueueDepth;  // slack for unpolled sends
constexpr uint32_t kRdmaBlockBytes = 1024 * 1024;     // unit of the registered data pools
constexpr uint32_t kRdmaSegmentsMax = kFrameDataBytesMax / kRdmaBlockBytes;  // per message
constexpr uint32_t kRdmaDescriptorBytesMax = 8 + 16 * kRdmaSegmentsMax;
constexpr uint32_t kRdmaControlBytesMax =             // one control slot, page-rounded
    (kFrameHeaderBytes + kFrameMetaBytesMax + kRdmaDescriptorBytesMax + 4095) / 4096 * 4096;
// A send queue holds, per call slot, one data chain (one WR per overlap of a local block and a
// remote segment: < 2 x kRdmaSegmentsMax) plus the SEND of the reply.
constexpr uint32_t kRdmaSendWrMax = kRdmaServerCallSlots * (2 * kRdmaSegmentsMax + 1);
constexpr size_t kRdmaClientPoolBytesDefault = 128u << 20;  // registered, per client transport
constexpr size_t kRdmaServerPoolBytesDefault = 256u << 20;  // registered, per server transport
static_assert(kRdmaClientPoolBytesDefault >= kFrameDataBytesMax, "one message must fit");
static_assert(kRdmaServerPoolBytesDefault >= kFrameDataBytesMax, "one message must fit");
constexpr uint32_t kRdmaConnectionsMax = 256;         // queue pairs per server transport
constexpr uint32_t kRdmaHandshakeBytes = 64;          // fixed size of either handshake message
constexpr uint32_t kRdmaHandshakeTimeoutMs = 5000;
constexpr uint32_t kRdmaPendingHandshakesMax = 64;    // adopted sockets not yet handshaken
constexpr uint32_t kRdmaResourceWaitMsMax = 5000;     // waiting for a send slot or pool blocks
constexpr uint32_t kRdmaPollSpinRounds = 16;          // empty polls before blocking on the channel
constexpr uint8_t kRdmaGidIndexScanMax = 32;
// Queue pair timing (IB encodings): ack timeout 4.096us * 2^14 = 67 ms, 7 retries; RNR retry
// 7 = infinite is avoided so a peer that stops posting receives surfaces as an error.
constexpr uint8_t kRdmaAckTimeout = 14;
constexpr uint8_t kRdmaRetryCount = 7;
constexpr uint8_t kRdmaRnrRetry = 6;
constexpr uint8_t kRdmaMinRnrTimer = 12;
constexpr uint8_t kRdmaMaxRdAtomic = 8;                // outstanding RDMA READs per QP

// ---- control plane (native/common/msgpack.h, native/client/rpc_client.h, meta_client.h)
// ZeroMQ + msgpack to the TS services. The numbers mirror protocolLimits and metaLimits in
// src/limits.ts; both sides must agree.
constexpr uint32_t kProtocolVersion = 1;
constexpr size_t kMsgBytesMax = 1024 * 1024;             // one request or reply frame
constexpr size_t kMsgFrameBytesHardMax = 4 * 1024 * 1024; // libzmq drops the peer above this
constexpr uint32_t kMsgDepthMax = 32;                    // nesting of arrays and maps
constexpr uint32_t kMsgElementsMax = 256 * 1024;         // values in one decoded message
constexpr uint32_t kRpcMethodNameBytesMax = 64;
constexpr uint32_t kRpcInflightRequestsMax = 256;        // on the wire at once, per client
constexpr uint32_t kRpcQueuedCallsMax = 4096;            // accepted, not yet answered, per client
constexpr uint32_t kRpcTimeoutMsDefault = 5000;          // one attempt
constexpr uint32_t kRpcAttemptsMax = 6;                  // sends of one request (same requestId)
constexpr uint32_t kRpcServersMax = 16;                  // addresses of one service
constexpr int kRpcSocketHighWaterMarkMessages = 4096;
constexpr int kRpcReconnectIntervalMs = 50;
constexpr int kRpcReconnectIntervalMsMax = 1000;
// A server that drops this many connections in a row before their security handshake ends
// refused us: the refusal's own event is lost when the server resets the connection before the
// client has read its greeting (a CURVE server meeting a NULL client does exactly that).
constexpr uint32_t kRpcHandshakeDropsMax = 3;
constexpr uint32_t kRpcSendRetryMs = 5;                  // an unsendable request is retried
constexpr size_t kRpcClientIdBytes = 16;                 // dedup key of mutations
constexpr uint32_t kMetaPathBytesMax = 4096;
constexpr uint32_t kMetaReaddirEntriesMax = 1024;
// A client with write sessions open tells the meta service it lives this often; the service
// ends the sessions of a client quiet for 60 s (src/limits.ts metaLimits.sessionTimeoutMs).
constexpr uint32_t kMetaSessionHeartbeatMsDefault = 10000;
// Sessions one heartbeat names, asking which the service ended (metaLimits.heartbeatSessionsMax).
constexpr size_t kMetaHeartbeatSessionsMax = 1024;

// ---- file client (native/client/mgmtd_client.h, routing_cache.h, file_client.h)
// Mirrors clusterLimits and fsLimits in src/limits.ts where the TS client has the same knob.
constexpr uint32_t kMgmtdCallTimeoutMsDefault = 2000;    // one attempt at one mgmtd address
constexpr uint32_t kRoutingPollMsDefault = 1000;         // cached routing older than this refreshes
constexpr uint32_t kRoutingTargetsMax = 65536;           // records in one decoded Routing
constexpr uint32_t kRoutingChainsMax = 65536;
constexpr uint32_t kRoutingChainTablesMax = 256;
// Versions a chain table may reach (src/limits.ts clusterLimits.chainTableVersionsMax).
constexpr uint32_t kChainTableVersionsMax = 1024;
constexpr uint32_t kRoutingChainLengthMax = 16;
constexpr uint32_t kWriteRetryMsDefault = 30000;         // a chain write retries this long at most
constexpr uint32_t kWriteAttemptsMax = 200;
constexpr uint32_t kWriteRetryBackoffMsMax = 250;
constexpr uint32_t kReadRoundsMax = 10;                  // rounds over a chain's serving replicas
// Hedged reads (client/file_client.h): a chunk read not answered within kReadHedgeMedianFactor
// times the median of the client's last kReadHedgeSamplesMax answers (clamped to the bounds;
// the upper one until kReadHedgeSamplesMin answers were seen) is sent to a second replica too.
constexpr uint32_t kReadHedgeMedianFactor = 4;
constexpr uint32_t kReadHedgeDelayMsMin = 20;
constexpr uint32_t kReadHedgeDelayMsMax = 300;
constexpr size_t kReadHedgeSamplesMax = 64;
constexpr size_t kReadHedgeSamplesMin = 8;
// Hedges are paid from a budget (client/hedge_governor.h): each first attempt of a chunk read
// earns 1/kReadHedgeEarnDivisor of a hedge, up to kReadHedgeBurstMax saved; when every replica
// is slow because this client queued too much on all of them, a second read of each late
// chunk would only add load (16 readers of 64 MiB hedged 48% of their reads before it).
constexpr uint32_t kReadHedgeEarnDivisor = 10;
constexpr uint32_t kReadHedgeBurstMax = 16;
// A replica with a read unanswered past the hedge delay is tried last by new reads for this
// long, or until it answers: a paused replica costs hedges only for the reads already on it.
constexpr uint32_t kReadStalledReplicaMs = 2000;
// Batched reads (FileHandle::ReadBatch) hedge on their own answer times, not chunk reads': a
// batch carries up to kBatchReadEntriesMax reads. One slower than the factor times their
// median, within [kReadHedgeDelayMsMin, this], is abandoned and its pieces read one by one.
constexpr uint32_t kBatchReadHedgeDelayMsMax = 1000;
constexpr uint32_t kFileChunksInflightDefault = 8;       // chunk reads or writes of one call at once
constexpr uint32_t kFileChunksInflightMax = 256;
constexpr size_t kFileWriteBehindBytesDefault = size_t{64} << 20;   // buffered writes per handle
constexpr size_t kFileWriteBehindBytesMax = size_t{1024} << 20;
constexpr size_t kFileReadAheadBytesDefault = size_t{64} << 20;     // prefetched chunks per file
constexpr size_t kFileReadAheadBytesMax = size_t{1024} << 20;
// The TS FileSystem's calls into its native FileClient (addon): threads that run them (each
// call blocks one while its chunk I/O is in flight) and calls queued beyond those.
constexpr uint32_t kFileClientCallThreads = 16;
constexpr size_t kFileClientQueuedCallsMax = 4096;
constexpr uint32_t kFileReadPieceBytesMax = 1024 * 1024;  // a large read is split into pieces of this
constexpr uint32_t kFileReadAheadChunksMax = 64;         // chunks of one file prefetched at once
// A read longer than the read-ahead window over this goes in steps of window / this: each step
// is one sequential read to the read-ahead, which refills the window behind it as it goes.
constexpr uint32_t kFileReadAheadStepsPerWindow = 4;
constexpr size_t kFileReadAheadPoolBytesMax = size_t{1024} << 20;  // per client, all files together
// Hedged reads' second buffers, kept for reuse (a fresh 4 MiB buffer costs its page faults on
// the transport's receive thread); past this a hedge allocates its own.
constexpr size_t kFileHedgePoolBytesMax = size_t{256} << 20;
constexpr size_t kReadAheadStreamsMax = 8;              // recent read ends a sequential read may continue
constexpr uint64_t kFileLengthBytesMax = uint64_t{1} << 50;  // offsets a handle accepts (1 PiB)

// ---- FUSE mount (native/fuse)
constexpr uint32_t kFuseRequestBytesMax = 1024 * 1024;   // max_read and max_write of the mount
constexpr uint32_t kFuseAttrTimeoutMsDefault = 1000;     // kernel attribute cache
constexpr uint32_t kFuseEntryTimeoutMsDefault = 1000;    // kernel name cache
constexpr uint32_t kFuseTimeoutMsMax = 3600000;
constexpr uint32_t kFuseThreadsDefault = 16;             // request threads of the session loop
constexpr uint32_t kFuseThreadsMax = 256;
constexpr uint32_t kFuseBackgroundMax = 64;              // async kernel requests (read-ahead) in flight
constexpr uint32_t kFuseOpenFilesMax = 4096;             // open handles; beyond: EMFILE
constexpr size_t kFuseWriteBehindBytesDefault = size_t{16} << 20;  // per open file
constexpr uint32_t kFuseGroupsMax = 64;                  // supplementary groups sent per caller (metaLimits.gidsMax)
constexpr uint32_t kFuseReadAheadKbDefault = 4096;       // the mount's kernel read-ahead window
constexpr uint32_t kFuseMountReadyMsMax = 30000;         // a daemon's parent waits this long for the mount
constexpr uint32_t kFuseProbeTimeoutMs = 3000;           // per attempt of the start's meta probe (a dead meta; refusals are EAUTH at once)
constexpr uint32_t kFuseProbeAttempts = 3;               // 9 s in all, under kFuseMountReadyMsMax
constexpr size_t kFuseTokenBytesMax = 4096;              // a token file or descriptor's contents
// The mount's /metrics responder (fuse/metrics_http.h): one connection at a time, each bounded.
constexpr size_t kMetricsHttpRequestBytesMax = 8192;     // request line and headers; beyond: 431
constexpr uint32_t kMetricsHttpTimeoutMs = 5000;         // to receive the headers and to send the answer
constexpr int kMetricsHttpBacklog = 16;                  // scrapes waiting to be accepted
constexpr size_t kMetricsHttpDrainBytesMax = 64 * 1024;  // read and dropped after an early answer (431)

// ---- nested waits: every timeout is shorter than the retry window or request around it, so
// one stuck step never uses up the whole window (issue 9 item 8: a 30 s request inside a 30 s
// write window let one paused head fail writes though two replicas were healthy).
static_assert(kClientConnectTimeoutMs + kClientTimeoutMsDefault < kWriteRetryMsDefault,
              "a chunk request (with its connect) fits the write retry window with room to retry");
static_assert(kMgmtdCallTimeoutMsDefault < kWriteRetryMsDefault, "a routing refresh inside the write window");
static_assert(kChainForwardTimeoutMs < kClientTimeoutMsDefault, "a head's forward inside the writer's request");
static_assert(kServerBufferWaitMs < kClientTimeoutMsDefault, "a server's wait for buffers inside the request");
static_assert(kRdmaResourceWaitMsMax < kClientTimeoutMsDefault, "an RDMA server's wait for blocks inside the request");
static_assert(kRdmaHandshakeTimeoutMs < kClientTimeoutMsDefault, "an RDMA handshake inside the request");
static_assert(kReadHedgeDelayMsMax < kClientTimeoutMsDefault, "a hedge starts long before the request times out");
static_assert(kBatchReadHedgeDelayMsMax < kClientTimeoutMsDefault, "a batch is given up on before it times out");
static_assert(kTimerTickMs < kReadHedgeDelayMsMax, "deadlines are checked often enough for hedges");

}  // namespace millpond::limits
