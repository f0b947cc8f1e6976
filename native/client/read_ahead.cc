#include "client/read_ahead.h"

#include <algorithm>
#include <cstring>

#include "client/file_client.h"
#include "client/layout.h"
#include "common/limits.h"

namespace millpond {

ReadAhead::ReadAhead(FileClient* client, uint64_t inodeId, uint32_t chunkSizeBytes, uint32_t windowChunks)
    : client_(client), inodeId_(inodeId), chunkSizeBytes_(chunkSizeBytes), windowChunks_(windowChunks) {}

ReadAhead::~ReadAhead() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return inflight_ == 0; });
}

size_t ReadAhead::cachedBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return cacheBytes_;
}

void ReadAhead::Serve(uint64_t offset, uint64_t n, uint64_t fileLength, const std::vector<uint32_t>& chains,
                      const std::vector<ChunkPiece>& pieces, std::vector<ChunkPiece>* misses) {
  const uint64_t end = offset + n;
  std::vector<std::shared_ptr<Prefetch>> start;
  std::unique_lock<std::mutex> lock(mu_);
  const bool sequential = std::find(recentEnds_.begin(), recentEnds_.end(), offset) != recentEnds_.end();
  recentEnds_.push_back(end);
  if (recentEnds_.size() > limits::kReadAheadStreamsMax) recentEnds_.pop_front();
  if (sequential && end < fileLength) {
    const uint64_t first = end / chunkSizeBytes_;
    const uint64_t last = std::min<uint64_t>(first + windowChunks_, (fileLength - 1) / chunkSizeBytes_ + 1);
    PlanLocked(first, last, offset / chunkSizeBytes_, fileLength, &start);
  }
  // Start the window before waiting for this read's own chunks, so the two overlap.
  lock.unlock();
  for (const std::shared_ptr<Prefetch>& e : start) {
    client_->mutable_counters().prefetches++;
    client_->PrefetchChunk(layout::ChainOfChunk(chains, e->index), ChunkId{inodeId_, e->index}, e->lengthBytes,
                           e->data.data(), [this, e](bool ok) { Finish(e, ok); }, e->abandon);
  }
  // The destination's fresh pages are faulted in now, while the window's reads are in flight
  // and outside the lock; the copies below would take them one trap per page, under it.
  for (const ChunkPiece& p : pieces) PrefaultForWrite(p.dst, p.lengthBytes);
  lock.lock();
  for (const ChunkPiece& p : pieces) {
    auto it = cache_.find(p.chunk.index);
    if (it == cache_.end()) {
      misses->push_back(p);
      continue;
    }
    std::shared_ptr<Prefetch> e = it->second;  // keeps the buffer while we wait unlocked
    // A prefetch slower than a hedge is not waited for: the reader reads the piece itself,
    // with hedging, into its own buffer (the prefetch's buffer stays the prefetch's).
    const auto giveUpAt = e->startedAt + client_->ReadHedgeDelay();
    if (!cv_.wait_until(lock, giveUpAt, [&] { return e->state != Prefetch::State::kPending; })) {
      e->abandon->store(true);
      misses->push_back(p);
      continue;
    }
    if (e->state == Prefetch::State::kReady && p.offsetInChunk + p.lengthBytes <= e->lengthBytes) {
      std::memcpy(p.dst, e->data.data() + p.offsetInChunk, p.lengthBytes);
      client_->mutable_counters().prefetchHits++;
    } else {
      misses->push_back(p);
    }
  }
}

void ReadAhead::PlanLocked(uint64_t first, uint64_t end, uint64_t keepFrom, uint64_t fileLength,
                           std::vector<std::shared_ptr<Prefetch>>* start) {
  // Drop what lies outside [keepFrom, end) and what failed (retried below); an entry in
  // flight stays until it completes, as its buffer is in use.
  for (auto it = cache_.begin(); it != cache_.end();) {
    const Prefetch& e = *it->second;
    bool keep = it->first >= keepFrom && it->first < end && e.state != Prefetch::State::kFailed;
    if (!keep && e.state != Prefetch::State::kPending) {
      cacheBytes_ -= e.lengthBytes;
      it = cache_.erase(it);
    } else {
      ++it;
    }
  }
  const size_t budget = client_->options().readAheadBytes;
  for (uint64_t index = first; index < end; index++) {
    if (cache_.count(static_cast<uint32_t>(index))) continue;
    const uint64_t chunkStart = index * chunkSizeBytes_;
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(chunkSizeBytes_, fileLength - chunkStart));
    if (cacheBytes_ + len > budget) break;
    auto e = std::make_shared<Prefetch>();
    if (!client_->readAheadBuffers().TryAcquire(len, &e->data).ok()) break;  // the client's pool is spent
    e->index = static_cast<uint32_t>(index);
    e->lengthBytes = len;
    e->startedAt = std::chrono::steady_clock::now();
    cache_[e->index] = e;
    cacheBytes_ += len;
    inflight_++;
    start->push_back(std::move(e));
  }
}

void ReadAhead::Finish(const std::shared_ptr<Prefetch>& e, bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  e->state = ok ? Prefetch::State::kReady : Prefetch::State::kFailed;
  inflight_--;
  cv_.notify_all();
}

void ReadAhead::Invalidate(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t first = offset / chunkSizeBytes_, last = (offset + length - 1) / chunkSizeBytes_;
  for (auto it = cache_.lower_bound(static_cast<uint32_t>(first)); it != cache_.end() && it->first <= last;) {
    // An entry in flight keeps its buffer alive through its completion's reference.
    cacheBytes_ -= it->second->lengthBytes;
    it = cache_.erase(it);
  }
}

}  // namespace millpond
