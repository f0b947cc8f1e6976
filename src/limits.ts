/**
 * Bounds users see from TypeScript. They mirror native/common/limits.h, which is the
 * authority; a test checks the two agree.
 */
export const limits = {
  chunkSizeBytesMin: 64 * 1024,
  chunkSizeBytesMax: 64 * 1024 * 1024,
  chunkSizeBytesDefault: 4 * 1024 * 1024,
  chunkBlockBytes: 4096,
  /** Reads from this size on bypass the page cache (O_DIRECT), straight into block-aligned memory. */
  directReadBytesMin: 256 * 1024,
  batchReadEntriesMax: 4096,
  batchReadBytesMax: 64 * 1024 * 1024,
  listReplyEntriesMax: 2048,
  clientInflightBytesDefault: 256 * 1024 * 1024,
  clientInflightBytesMax: 4096 * 1024 * 1024,
  /** One chunk request; shorter than clusterLimits.writeRetryMsDefault, the window around it. */
  clientTimeoutMsDefault: 10_000,
  clientConnectionsPerServerMax: 16,
  serverIoThreadsDefault: 4,
  serverIoThreadsMax: 64,
  serverFrameTimeoutMsDefault: 30_000,
  /** A data server takes buffer memory for a payload at most this far ahead of the bytes received. */
  serverReceiveAheadBytes: 1024 * 1024,
} as const;

/**
 * Control plane (src/protocol): ZeroMQ + msgpack messages between every TS service and,
 * later, the C++ client. A future native/common mirror must keep the same numbers.
 */
export const protocolLimits = {
  version: 1,
  /** A request or reply frame above this gets EMSGSIZE. */
  messageBytesMax: 1024 * 1024,
  /** Frames above this are dropped by libzmq, which closes the sender's connection. */
  frameBytesHardMax: 4 * 1024 * 1024,
  methodNameBytesMax: 64,
  /** Requests a server works on at once; further requests wait in the socket's queue. */
  serverInflightRequestsMax: 256,
  /** Replies queued for sending before the server stops reading requests. */
  serverSendQueueDepthMax: 1024,
  rpcInflightRequestsMax: 256,
  rpcTimeoutMsDefault: 5_000,
  /** Sends of one request after a timeout (same requestId, so mutations apply once). */
  rpcAttemptsMax: 6,
  /** Servers of one service a client fails over between (FailoverRpc; native kRpcServersMax). */
  rpcServersMax: 16,
  socketHighWaterMarkMessages: 4096,
  /**
   * Requests (or replies) one batch frame carries at most (TS peers only: a TS client joins
   * the requests it makes in one event-loop turn into one frame, the server answers them the
   * same way; a batch frame is also at most messageBytesMax).
   */
  batchMessagesMax: 128,
} as const;

/** Metadata service (src/meta): names, listings, transactions, sessions, garbage. */
export const metaLimits = {
  pathBytesMax: 4096,
  nameBytesMax: 255,
  /** Supplementary groups one request may carry. */
  gidsMax: 64,
  readdirEntriesDefault: 256,
  readdirEntriesMax: 1024,
  /**
   * A readdir plus page ends before its entries' estimated bytes pass this (inodes with object
   * attributes of up to objectAttrsBytesMax each): below protocolLimits.messageBytesMax, with
   * room for the estimate's slack.
   */
  readdirPlusBytesMax: 768 * 1024,
  /** What an estimate allows for an entry of a readdir plus page beside its name, symlink target and object attributes. */
  readdirPlusEntryFixedBytes: 512,
  garbageBatchMax: 1024,
  /**
   * A garbage collector holds the files takeGarbage gave it this long: another collector (each
   * meta server runs one) takes the next files instead, and a collector that died or whose
   * pass failed for a file leaves it to a later pass after the lease. Removal is idempotent, so
   * a pass outlasting its lease only repeats work.
   */
  garbageLeaseMsDefault: 30_000,
  /** Queue entries one takeGarbage looks at, at most (leased ones are passed over). */
  garbageScanEntriesMax: 8_192,
  transactionAttemptsMax: 64,
  transactionBackoffMsMax: 64,
  /** Inode ids one server reserves per counter transaction (keeps the counter key cool). */
  inodeIdBatch: 256,
  stripeSizeMax: 256,
  /** Names one file may have (hard links), as ext4 allows 65,000. */
  linksPerFileMax: 65_000,
  stripeSizeDefault: 3,
  chainTableIdDefault: 1,
  /** How long the result of a mutation is kept for a retried request (clientId, requestId). */
  dedupTtlMs: 10 * 60_000,
  dedupPruneBatch: 512,
  dedupPruneIntervalMs: 10_000,
  /**
   * Write sessions of a client that has not been heard from for this long are ended by the
   * meta service (the client crashed or was cut off): its unlinked files are collected.
   * Clients with open sessions say they live every sessionHeartbeatMs.
   */
  sessionTimeoutMs: 60_000,
  sessionHeartbeatMs: 10_000,
  sessionPruneIntervalMs: 10_000,
  /** How often (and after how long) shrinks that did not finish cutting their chunks are retried. */
  trimRetryIntervalMs: 30_000,
  /** Sessions one heartbeat may name (asking which of them the service ended). */
  heartbeatSessionsMax: 1024,
  /** Sessions and liveness records one prune transaction looks at. */
  sessionPruneBatch: 512,
  /**
   * PostgreSQL connections one meta server (or mgmtd) keeps: one transaction each, so the
   * transactions in flight at once; requests beyond it wait for a connection.
   */
  postgresPoolConnectionsDefault: 8,
  /**
   * Serializable (writing) transactions one server runs on PostgreSQL at once; the rest of
   * the pool serves reads. A group transaction (all that began in one turn) is one of them, so
   * one place still serves many clients; overlapping groups conflict (btree pages are
   * predicate-locked), and a conflict costs a whole group. One client's 32 creates in flight
   * on a 2-core VM: 4 places 4.9-5.8k creates/s with 8-44 rollbacks per 8,000; 2 places
   * 4.7-5.7k, 7-21; 1 place 5.3-6.5k, none (bench/.work/metacreate.ts).
   */
  postgresWritersMax: 1,
  /**
   * Transactions begun in one event-loop turn that run as one on PostgreSQL, sharing its round
   * trips and its COMMIT (src/kv/postgres-group.ts); more make further groups.
   */
  postgresGroupMembersMax: 64,
  /** Attempts of a group that met serialization failures before its members run alone. */
  postgresGroupAttemptsMax: 3,
  /**
   * SQLite group commit: transactions queued while one commit is on disk share the next
   * commit (one fsync), each in its own savepoint; at most this many per commit.
   */
  sqliteGroupCommitMax: 64,
  /**
   * Reads answered together: one SQLite snapshot, one PostgreSQL statement. A burst of
   * requests (one client's batch frame) is read in groups this size, and each group's answers
   * leave as soon as it is read: the client sends its next requests while the server reads,
   * instead of both waiting in turn for a whole burst. A PostgreSQL statement costs a socket
   * write and a backend's wake-up (~100 us of CPU on a 2-core VM), a SQLite snapshot a few us,
   * hence the sizes. One client's 32 stats in flight, six alternating runs each
   * (bench/.work/metasq.ts, metacreate.ts), median stats/s with 32 per group against 8: SQLite
   * 13.1k against 17.4k, PostgreSQL 12.0k against 13.5k; 16 against 8: SQLite 12.1-14.7k against
   * 17.1-20.5k (worse); PostgreSQL in `npm run bench -- meta --backends postgres`, three pairs,
   * auth on: 10.1-10.6k against 9.5-9.6k.
   */
  sqliteReadGroupMembersMax: 8,
  postgresReadGroupMembersMax: 16,
  /**
   * Runs of a one-statement read that asked for a second statement, each with the next shared
   * statement, before it runs in a transaction of its own. A stat of a file this server has no
   * path hint for (created through another meta server, or before a restart) takes two: one
   * for its entry, one for its inode.
   */
  postgresOneStatementRoundsMax: 3,
  /**
   * Values (or absences) SQLite's read connection found or its write groups committed, kept
   * for later reads (src/kv/sqlite-kv.ts): at most this many keys, the least recently used
   * forgotten first (src/bounded-cache.ts).
   * About 400 bytes each with its key and buffer: ~50 MiB at most.
   */
  sqliteReadCacheEntriesMax: 131_072,
  /** The same for PostgreSQL's shared reads, kept while its snapshot holds (src/kv/postgres-snapshot-cache.ts). */
  postgresReadCacheEntriesMax: 131_072,
  /** Keys one statement reads (KvTx.getMany): a path's entries and inodes, a readdirplus page. */
  getManyKeysMax: 2048,
  /**
   * (directory, name) -> inode hints one meta server keeps so a path's keys are read in one
   * statement; a wrong hint costs a statement, never a wrong answer (reads verify it).
   */
  pathHintsMax: 65_536,
  /** S3 access keys in one namespace (src/meta/access-keys.ts). */
  accessKeysMax: 10_000,
  /** A file's S3 object attributes (ETag, Content-Type, x-amz-meta-*), packed. */
  objectAttrsBytesMax: 8 * 1024,
} as const;

/**
 * Cluster manager (src/cluster) and storage daemons (src/storage). Defaults suit a LAN;
 * tests pass shorter timeouts through options.
 */
export const clusterLimits = {
  nodesMax: 4096,
  targetsMax: 65536,
  chainsMax: 65536,
  chainTablesMax: 256,
  /** Versions a chain table may reach (each grow adds one; routing carries a count per version). */
  chainTableVersionsMax: 1024,
  chainLengthMax: 16,
  targetsPerNodeMax: 256,
  addressBytesMax: 256,
  /** A node is dead when no heartbeat arrived for this long. */
  heartbeatTimeoutMsDefault: 10_000,
  /** Storage daemons heartbeat this often (well below the timeout). */
  heartbeatIntervalMsDefault: 1_000,
  /** How often the primary checks for missed heartbeats. */
  livenessCheckMsDefault: 500,
  /** The primary's lease in the KV; renewed every third of it. */
  leaseMsDefault: 10_000,
  /** A standby polls the lease this often. */
  leasePollMsDefault: 1_000,
  /** Daemons and clients poll routing at least this often (also on ESTALE and version hints). */
  routingPollMsDefault: 1_000,
  /** Per attempt to one mgmtd address. */
  mgmtdCallTimeoutMsDefault: 2_000,
  /** Rounds over the list of mgmtd addresses per call before giving up. */
  mgmtdCallRoundsMax: 10,
  mgmtdRetryBackoffMsMax: 500,
  /** A chain write retried on ESTALE and connection errors for at most this long. */
  writeRetryMsDefault: 30_000,
  writeAttemptsMax: 200,
  writeRetryBackoffMsMax: 250,
  /** Reads try each serving replica, refreshing routing between rounds, this many rounds. */
  readRoundsMax: 10,
  /** Chunks listed per resync page (<= limits.listReplyEntriesMax). */
  resyncListPage: 1024,
  /** Chunks copied at once by one resync. */
  resyncCopiesInflightMax: 8,
  /** Scrub reads this many chunk bytes per second at most. */
  scrubBytesPerSecDefault: 64 * 1024 * 1024,
  scrubListPage: 256,
  /** Unlinked files whose chunks one garbage pass removes at most. */
  garbageBatch: 64,
  /** Files of a garbage pass whose chunks are being removed at once (each on all its targets). */
  garbageFilesInFlight: 8,
  /** The first page of a file's chunk listing on one target (garbage, trims); later pages double. */
  garbageListPageFirst: 16,
  /** The garbage collector's pass interval. */
  garbageIntervalMsDefault: 1_000,
  /**
   * Stray chunks (src/storage/stray-sweep.ts): a target removes the chunks tagged with a chain
   * only once that chain has been absent from the target's chains, in every routing its daemon
   * applied, for this long (a move back onto the target, or clients on an older routing, have
   * had this long to show up). Storage daemon option strayGraceMs (--stray-grace-ms) in tests.
   */
  strayChainGraceSecDefault: 600,
  /** A storage daemon's sweep pass runs this often (option straySweepIntervalMs; 0: never). */
  straySweepIntervalMsDefault: 2_000,
  /** Chunks one sweep pass lists (and so removes) at most on one target; the next pass goes on after them. */
  straySweepListPage: 1024,
} as const;

/** The FileSystem API (src/fs). */
/**
 * Chain-table administration (src/cluster/placement.ts, mgmtd's admin operations): what a
 * target must have free to be given new replicas, how many replica moves run at once, how
 * often mgmtd advances them.
 */
export const adminLimits = {
  /** A target with less free space than this is full: placement gives it no new replica. */
  targetFreeBytesMin: 256 * 1024 * 1024,
  /** Replica moves (rebalance, drain, replace) under way at once, cluster-wide. */
  movesInflightMax: 2,
  /** mgmtd advances moves this often (well below the heartbeat timeout). */
  tickMsDefault: 250,
  /** `admin rebalance` without --rate-mib-s: the bytes per second moves are paced at. */
  rebalanceRateMiBsDefault: 64,
  rebalanceRateMiBsMax: 100_000,
  /** Replicas per chain `admin create-chain-table` takes (design §9: 1..5, 3 by default). */
  replicasMax: 5,
  replicasDefault: 3,
  /** Chains per storage target when `--chains` is not given. */
  chainsPerTargetDefault: 4,
  /** Nodes being drained at once. */
  drainingNodesMax: 64,
  /**
   * One step of a replica move (waiting to join, then syncing until the new replica serves)
   * gets this long; a step that takes longer is undone (the new replica leaves the chain, which
   * keeps every replica it had) and counts as a failed attempt. Shorter than the retry window.
   */
  moveStepTimeoutMsDefault: 10 * 60_000,
  /**
   * How long an operation (rebalance, drain, replace) keeps retrying moves that failed; once it
   * passes, the operation ends with an error in `admin list ops`.
   */
  moveRetryWindowMsDefault: 30 * 60_000,
  /** Errors of ended operations `admin list ops` keeps (the newest). */
  opErrorsMax: 16,
  /** Node ids removed for good that mgmtd refuses to register again (the newest kept). */
  removedNodesMax: 4096,
  /** Burst of a resync's token bucket: the bytes of this many ms at its rate. */
  resyncBurstMs: 100,
} as const;

export const fsLimits = {
  /**
   * Chunk-aligned writes of one write stream in flight at once (each holds a chunk-sized
   * buffer); 'finish' waits for all of them. Append streams write one at a time (each at the
   * end the one before made).
   */
  streamWritesInFlight: 4,
  /**
   * Chunk-sized buffers of finished sequential I/O (write streams and S3 PUTs filling pieces,
   * S3 GETs reading ahead) kept idle for the next of the process, in bytes: a buffer is filled
   * in memory already touched (first-touch page faults cost far more than the copy), not
   * allocated per piece (src/fs/chunk-buffers.ts).
   */
  chunkBuffersPooledBytesMax: 64 * 1024 * 1024,
  /** Bytes one read() returns at most, and the longest file readFile() returns (a Buffer's practical bound). */
  readBytesMax: 1024 * 1024 * 1024,
  /** Default highWaterMark of read and write streams. */
  streamChunkBytesDefault: 1024 * 1024,
  /** Directory entries fetched per readdir page. */
  readdirPageEntries: 1024,
  /** Entries glob() and rm({ recursive }) visit at most. */
  walkEntriesMax: 1_000_000,
  /** Files of one directory rm({ recursive }) unlinks at once. */
  rmUnlinksInFlight: 16,
  /** Path components of a glob pattern. */
  globDepthMax: 256,
} as const;

/** The engine (src/engine): sessions, plans, tasks and the local executor. */
export const engineLimits = {
  /** Worker processes of one local executor. */
  workersMax: 256,
  /** DuckDB threads one task may use. */
  threadsPerTaskMax: 256,
  /** Partitions of one node (repartition's n; also the files one shuffle producer writes). */
  partitionsMax: 10_000,
  /** Attempts of one task (the first run plus retries) before the job fails. */
  taskAttemptsMax: 3,
  /** Tasks handed to one worker at once: one running; the scheduler keeps the rest. */
  tasksInFlightPerWorker: 1,
  /** A worker that has not said it is ready within this long is killed and replaced. */
  workerStartTimeoutMs: 30_000,
  /** The progress line is redrawn at most this often. */
  progressIntervalMs: 200,
  /**
   * Bytes per read and write when a task copies a file in millpond (writeParquet of a whole
   * file): a multiple of every default chunk size, so each write replaces whole chunks.
   */
  copyPieceBytes: 16 * 1024 * 1024,
  /** Rows fromItems accepts (they travel through the parent's memory as JSON). */
  fromItemsRowsMax: 10_000_000,
  /** Default DuckDB memory limit of one task. */
  memoryLimitPerTaskBytesDefault: 1024 * 1024 * 1024,
} as const;

/** The cluster executor (BullMQ on Redis; src/engine/execution/cluster-*.ts). */
export const clusterExecutorLimits = {
  /**
   * A running task's lock in Redis lasts this long and is renewed at half of it; an executor
   * that dies or is cut off loses it, and the task goes back to the queue at the next stalled
   * check (BullMQ's defaults are 30 s: seconds here, as design §11 asks).
   */
  lockDurationMs: 5_000,
  /** How often executors look for tasks whose lock lapsed. */
  stalledCheckIntervalMs: 2_000,
  /** Times a task may go back to the queue after lapsed locks before its attempt fails. */
  stalledCountMax: 2,
  /** An executor refreshes its registry entry this often; an entry this old is a dead executor. */
  registryHeartbeatMs: 1_000,
  registryEntryTtlMs: 6_000,
  /** The driver checks a waited-for task's state this often (besides Redis events). */
  taskPollMs: 1_000,
  /** Redis unreachable this long fails the job with EIO instead of waiting on. */
  redisUnreachableMsMax: 30_000,
  /** Slots of one executor process. */
  slotsMax: 256,
  /** Tasks one driver keeps queued or running at once. */
  inFlightTasksMax: 4_096,
  /**
   * Tasks the driver keeps in the queue per live executor slot (when it is not told its slots):
   * more than one, so an executor finishing a task takes the next in the same Redis call
   * instead of idling for the round trip through the driver.
   */
  queuedTasksPerSlot: 8,
  /**
   * Tasks an executor takes from the queue per slot beyond the one running, held until a slot
   * frees (their locks renewed meanwhile): the next task starts when the last one ends, not a
   * Redis round trip later.
   */
  prefetchedTasksPerSlot: 1,
  /**
   * Data locality: a task waits in the queue of the host holding its input until that host has
   * started no task for this long, then goes to the shared queue (any executor); the driver
   * looks this often. (Spark's spark.locality.wait is 3 s too.)
   */
  localityWaitMs: 3_000,
  localityWaitMsMax: 600_000,
  /** A task reading more files than this is not located (one meta stat per file): any executor takes it. */
  localityFilesMax: 256,
  /** Files whose placement the driver remembers (least recently used forgotten first). */
  localityCacheEntriesMax: 65_536,
  localityCheckMs: 200,
  /** Tasks the driver puts on the queue in one addBulk call. */
  enqueueBatchMax: 256,
  /**
   * Speculative copies: a task running longer than this factor times its stage's median (and
   * at least speculationMinMs) gets a second attempt, if a slot is free.
   */
  speculationMedianFactor: 3,
  speculationMinMs: 2_000,
  /** Finished jobs' records kept in Redis (for inspection), then removed by BullMQ. */
  finishedJobsKeptSeconds: 3_600,
  /** Executors mgmtd keeps in its registry (src/cluster/executors.ts); bytes of an id or host name. */
  mgmtdExecutorsMax: 4_096,
  executorNameBytesMax: 256,
  /** One executor's report to mgmtd times out after this long (shorter than the heartbeat period). */
  mgmtdReportTimeoutMs: 800,
} as const;

/** Authentication of the control plane (src/auth, design §10). */
export const authLimits = {
  /** Users in meta's users table; tokens per user. */
  usersMax: 10_000,
  tokensPerUserMax: 64,
  userNameBytesMax: 64,
  groupsPerUserMax: 64,
  /** How long meta trusts a verified token without reading the users table again. */
  tokenCacheMs: 2_000,
  tokenCacheEntriesMax: 65_536,
  /** How often meta re-reads the users table for its ZAP handler (other meta servers' changes). */
  usersRefreshMs: 2_000,
  /** How often meta tells mgmtd the tokens it may admit (and at once after a change). */
  tokenPushMs: 2_000,
  tokenPushTimeoutMs: 1_000,
  /** Refusal lines one server logs per second (src/auth/refusal-log.ts). */
  refusalLinesPerSecond: 20,
  /** Data plane (src/auth/capability.ts): how long a capability meta hands out stays good (10 min); clients renew before. */
  capabilityTtlMsDefault: 10 * 60_000,
  capabilityTtlMsMax: 24 * 60 * 60_000,
  /**
   * The ZAP handler's bind after its previous socket closed: libzmq frees the inproc endpoint
   * when its reaper thread gets to the closed socket (a millisecond or two), so the bind retries
   * EADDRINUSE every zapRebindPauseMs for at most zapRebindWaitMs.
   */
  zapRebindWaitMs: 2_000,
  zapRebindPauseMs: 2,
} as const;

/** The S3 gateway (src/s3). Sizes follow AWS's where AWS has one. */
export const s3Limits = {
  /** A request's signature time may differ from the server's clock by this much (AWS: 15 min). */
  clockSkewMs: 15 * 60_000,
  /** A presigned URL lives at most this long (AWS: 7 days). */
  presignExpiresSecMax: 7 * 24 * 3600,
  /** One PUT's body, and one part's (AWS: 5 GiB). */
  putObjectBytesMax: 5 * 1024 ** 3,
  partBytesMax: 5 * 1024 ** 3,
  /** Every part but the last is at least this big (AWS: 5 MiB). */
  partBytesMin: 5 * 1024 * 1024,
  partNumberMax: 10_000,
  keyBytesMax: 1024,
  /** x-amz-meta-* names and values together (AWS: 2 KiB). */
  userMetadataBytesMax: 2048,
  /** Request XML documents (DeleteObjects of 1000 keys fits). */
  xmlBodyBytesMax: 2 * 1024 * 1024,
  deleteObjectsKeysMax: 1000,
  /** Keys of one DeleteObjects being deleted at once. */
  deleteObjectsInFlight: 32,
  listKeysMax: 1000,
  /** Worker threads hashing request bodies (MD5 for ETags, SHA-256 of signed payloads). */
  hashWorkers: 2,
  /** Bytes handed to a hash worker at once; bodies no larger are hashed on the event loop. */
  hashBatchBytes: 1024 * 1024,
  /** Batches of one body given to its worker and not yet hashed (memory: this times the batch). */
  hashBatchesInFlight: 4,
  /**
   * Batch buffers a hash worker gave back, kept per worker for the next batches of any body
   * (a body's batches are copied into memory already touched, not allocated and zeroed).
   */
  hashSpareBatchesMax: 16,
  /**
   * Shared body pieces (pieces.ts: a PUT's bytes, read by its hash worker and its chunk writes
   * in place) kept for the next bodies, in bytes.
   */
  sharedPiecesPooledBytesMax: 128 * 1024 * 1024,
  /** aws-chunked chunk ends in one batch: a batch with this many goes to its worker at once. */
  hashMarksPerBatchMax: 128,
  /**
   * aws-chunked chunk signatures whose chunk hash is pending (checked as the hash workers get
   * there); past this the decoder waits for the oldest. More than hashMarksPerBatchMax, so the
   * oldest is always in a batch already sent.
   */
  chunkChecksPendingMax: 1024,
  /** Chunk writes (each one chunk of the file) of one PUT in flight: its memory is this times the chunk size. */
  putChunksInFlight: 8,
  /** Chunk-sized reads of one GET ahead of the socket (with the one being sent: as many in flight as a PUT's writes). */
  getChunksAhead: 7,
  /**
   * Bytes of chunk reads all GETs of one process have ahead of their sockets. Each GET may
   * always have one (it reads its next chunk while it sends one); more only within this. The
   * process keeps as many chunk buffers idle for reuse (fs/chunk-buffers.ts).
   */
  getReadAheadBytesMax: 128 * 1024 * 1024,
  /** An aws-chunked body's chunk header line. */
  chunkHeaderBytesMax: 4096,
  /**
   * Subdirectories a listing probes by name where a marker's segment has characters below '/'
   * ("a" and "a-b" for "a-b.c"); a marker with more reads its directory from the first instead.
   */
  listMarkerProbesMax: 8,
  /** Stat calls of one listing page in flight. */
  listStatsInFlight: 32,
  /** Access keys are cached this long (a removed key stops working within it). */
  accessKeyCacheMs: 10_000,
  accessKeyCacheEntriesMax: 10_000,
  /** SigV4 signing keys (one per access key, day, region and service) kept derived. */
  signingKeysCachedMax: 10_000,
  /** Multipart uploads not completed or aborted within this are removed (MinIO: 24 h). */
  uploadExpiryMsDefault: 24 * 3600_000,
  /** A PUT's temporary file left by a crash is removed after this. */
  tempExpiryMs: 3600_000,
  sweepIntervalMs: 60_000,
  /** Uploads ListMultipartUploads and one sweep look at. */
  uploadsListedMax: 10_000,
  /** Upload records ListMultipartUploads reads at once. */
  uploadInfoReadsInFlight: 32,
  /** A request's headers must arrive within this. */
  headersTimeoutMs: 60_000,
  /**
   * Idle keep-alive connections close after this: longer than clients keep idle sockets
   * (the AWS CLI and SDKs), so a client seldom reuses a socket the gateway is closing.
   */
  keepAliveTimeoutMs: 65_000,
  connectionsMax: 1024,
} as const;

/** Metrics (src/metrics, design §14). */
export const metricsLimits = {
  /** A scrape's request headers must arrive within this; a scrape answers well inside it. */
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  /** Concurrent scrape connections one daemon accepts. */
  connectionsMax: 64,
  /** Latency bucket upper bounds (ms) of the TS histograms (meta ops, S3 requests). */
  latencyBucketsMs: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10_000],
  /** Bucket upper bounds (bytes) of the per-task I/O histograms: 64 KiB .. 64 GiB, x4 apart. */
  taskBytesBuckets: Array.from({ length: 11 }, (_, i) => 65_536 * 4 ** i),
  /** `millpond up` serves /metrics here unless told otherwise: a free port on 127.0.0.1, printed and in cluster.json. */
  embeddedListenDefault: '127.0.0.1:0',
} as const;

/** Engine jobs a driver reports to mgmtd (src/cluster/jobs.ts, src/engine/execution/job-reporter.ts). */
export const jobReportLimits = {
  /** Jobs mgmtd keeps; a report of a new job beyond it is ENOSPC (the driver drops it). */
  mgmtdJobsMax: 256,
  /** A job's entry lives this long after its last report (a finished job stays visible this long). */
  entryTtlMs: 10 * 60_000,
  /** Tasks one report carries (a bigger job reports its first tasks and counts of all). */
  tasksPerReportMax: 2_048,
  /** Bytes of a job id, task key, stage name, host or executor name. */
  nameBytesMax: 256,
  /** A driver sends at most one report per job this often (the last state always goes out). */
  reportIntervalMs: 500,
  /** One report (one round over the mgmtd addresses) times out after this; never awaited by the job. */
  reportTimeoutMs: 2_000,
} as const;

/** The web console (src/console): its HTTP server, SSE clients and the views it keeps. */
export const consoleLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  /** Concurrent HTTP connections (SSE streams included). */
  connectionsMax: 64,
  /** Concurrent server-sent-event streams; one more is refused with 503 EBUSY. */
  sseClientsMax: 16,
  /** The cluster view is gathered and pushed this often. */
  viewIntervalMs: 1_000,
  /**
   * A gather not done after this is reported as ETIMEDOUT to the page (which keeps the last
   * view); its calls end by their own timeouts (mgmtd and meta clients), and the next gather
   * starts one interval later.
   */
  viewTimeoutMs: 5_000,
  /** Bytes an SSE client may have unsent before it is dropped (a stalled browser). */
  sseBacklogBytesMax: 4 * 1024 * 1024,
  /** Lifetime of the session cookie `?token=` sets. */
  cookieMaxAgeS: 12 * 3600,
  /** `millpond up` serves the console here unless told otherwise (`--console off`). */
  embeddedListenDefault: '127.0.0.1:0',
} as const;

/** The cluster view (src/cluster/cluster-view.ts). */
export const clusterViewLimits = {
  /** Each mgmtd address's status call times out after this (a dead standby must not stall the view). */
  statusTimeoutMs: 1_500,
  /** A target with less free space than this fraction of its capacity is "nearly full" (HEALTH_WARN). */
  nearlyFullFraction: 0.1,
} as const;
