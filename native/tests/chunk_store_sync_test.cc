// ChunkStore durability with injected faults: this binary defines fsync() itself, so every
// fsync the store makes (the core is linked in statically) comes here first. It records which
// file or directory was synced and can fail the ones under a given path with EIO, as a dying
// disk would. Issue 9 item 6: a removal syncs the chunk's directory (else the removed chunk
// can reappear after a crash), and a failing sync is an error, never ignored.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "storage/chunk_store.h"
#include "test_support.h"

namespace {

std::mutex g_mu;
bool g_record = false;
std::vector<std::string> g_synced;  // paths fsync'd while g_record
std::string g_failUnder;            // fsync of a path starting with this fails with EIO

std::string PathOfFd(int fd) {
  char link[64], buf[4096];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = ::readlink(link, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

extern "C" int fsync(int fd) {
  std::string path = PathOfFd(fd);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_record) g_synced.push_back(path);
    if (!g_failUnder.empty() && path.rfind(g_failUnder, 0) == 0) {
      errno = EIO;
      return -1;
    }
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

namespace millpond {
namespace {

class ChunkStoreSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/millpond-sync-XXXXXX";
    dir_ = mkdtemp(tmpl);
    char real[PATH_MAX];
    ASSERT_NE(::realpath(dir_.c_str(), real), nullptr);
    dir_ = real;  // canonical, as /proc shows it
  }
  void TearDown() override {
    {
      std::lock_guard<std::mutex> lock(g_mu);
      g_record = false;
      g_synced.clear();
      g_failUnder.clear();
    }
    millpond::testing::RemoveTree(dir_);
  }
  static std::vector<std::string> Synced() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_synced;
  }
  static void Record(bool on) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_record = on;
    g_synced.clear();
  }
  static void FailUnder(const std::string& prefix) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_failUnder = prefix;
  }
  std::string dir_;
};

TEST_F(ChunkStoreSyncTest, RemoveSyncsTheChunksDirectory) {
  std::unique_ptr<ChunkStore> store;
  ASSERT_TRUE(ChunkStore::Open(dir_ + "/t", ChunkStoreOptions{}, &store).ok());
  ChunkId id{1, 2};
  ChunkMeta meta;
  ASSERT_TRUE(store->Write(id, 0, "abc", 3, ChunkWriteOptions{}, &meta).ok());
  Record(true);
  ASSERT_TRUE(store->Remove(id).ok());
  std::vector<std::string> synced = Synced();
  Record(false);
  // The shard directory that held the chunk's file: dir/t/chunks/<hh>.
  bool dirSynced = false;
  for (const auto& p : synced) dirSynced |= p.rfind(dir_ + "/t/chunks/", 0) == 0;
  EXPECT_TRUE(dirSynced) << "no fsync of the chunk's directory after the unlink (" << synced.size() << " fsyncs)";
}

TEST_F(ChunkStoreSyncTest, AFailingDirectorySyncOnRemoveIsAnError) {
  std::unique_ptr<ChunkStore> store;
  ASSERT_TRUE(ChunkStore::Open(dir_ + "/t", ChunkStoreOptions{}, &store).ok());
  ChunkId id{1, 3};
  ChunkMeta meta;
  ASSERT_TRUE(store->Write(id, 0, "abc", 3, ChunkWriteOptions{}, &meta).ok());
  FailUnder(dir_ + "/t/chunks/");
  Status s = store->Remove(id);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  FailUnder("");
  EXPECT_EQ(store->Stat(id, &meta).code(), StatusCode::kNotFound);  // gone from the namespace all the same
}

TEST_F(ChunkStoreSyncTest, AFailingSyncWhenATargetIsCreatedFailsTheOpen) {
  FailUnder(dir_ + "/t/MILLPOND_TARGET");
  std::unique_ptr<ChunkStore> store;
  Status s = ChunkStore::Open(dir_ + "/t", ChunkStoreOptions{}, &store);
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_EQ(store, nullptr);
}

TEST_F(ChunkStoreSyncTest, WithoutSyncWritesRemoveMakesNoSync) {
  ChunkStoreOptions o;
  o.syncWrites = false;
  std::unique_ptr<ChunkStore> store;
  ASSERT_TRUE(ChunkStore::Open(dir_ + "/t", o, &store).ok());
  ChunkId id{1, 4};
  ChunkMeta meta;
  ASSERT_TRUE(store->Write(id, 0, "abc", 3, ChunkWriteOptions{}, &meta).ok());
  FailUnder(dir_);
  EXPECT_TRUE(store->Remove(id).ok());
}

}  // namespace
}  // namespace millpond
