// Helpers shared by the chunk store's files (chunk_store.cc, chunk_store_read.cc,
// chunk_store_write.cc). Not part of the store's interface.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace millpond::chunk_store_internal {

constexpr uint32_t kStagingWaitMs = 60000;  // for staging memory (merges, unaligned I/O)
constexpr int kShardDirs = 256;              // chunks/<hh>/ directories, by ChunkId hash
// A version being written lives in its chunk's shard directory under this prefix until it is
// renamed to its chunk file name (or removed by the next Open after a crash). No chunk file
// name starts with a dot.
constexpr const char* kTempPrefix = ".t.";

Status MakeDir(const std::string& path);     // EEXIST is fine
Status SyncDir(const std::string& path);     // fsync of a directory

}  // namespace millpond::chunk_store_internal
