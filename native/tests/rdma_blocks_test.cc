// Limits of the registered data pools: whole blocks, bounded, refused when too large.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/limits.h"
#include "transport/rdma/rdma_blocks.h"

namespace millpond::rdma {
namespace {

TEST(RdmaBlocks, AllocatesWholeBlocksWithinTheRegion) {
  BlockAllocator a(10 * 4096 + 100, 4096);  // the tail is not a whole block
  EXPECT_EQ(a.blocksTotal(), 10u);
  std::vector<uint32_t> b;
  ASSERT_TRUE(a.Allocate(0, &b).ok());
  EXPECT_TRUE(b.empty());
  ASSERT_TRUE(a.Allocate(4097, &b).ok());
  EXPECT_EQ(b.size(), 2u);
  EXPECT_EQ(a.blocksFree(), 8u);
  std::vector<uint32_t> c;
  EXPECT_EQ(a.Allocate(9 * 4096, &c).code(), StatusCode::kBusy);  // not now
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(a.Allocate(11 * 4096, &c).code(), StatusCode::kTooLarge);  // never
  ASSERT_TRUE(a.Allocate(8 * 4096, &c).ok());
  EXPECT_EQ(a.blocksFree(), 0u);
  a.Free(b);
  a.Free(c);
  EXPECT_EQ(a.blocksFree(), 10u);
  std::vector<uint32_t> all;
  ASSERT_TRUE(a.Allocate(10 * 4096, &all).ok());
  std::sort(all.begin(), all.end());
  for (uint32_t i = 0; i < 10; i++) EXPECT_EQ(all[i], i);  // each block handed out once
}

TEST(RdmaBlocks, DefaultPoolsHoldTheLargestMessage) {
  BlockAllocator client(limits::kRdmaClientPoolBytesDefault, limits::kRdmaBlockBytes);
  std::vector<uint32_t> b;
  ASSERT_TRUE(client.Allocate(limits::kFrameDataBytesMax, &b).ok());
  EXPECT_LE(b.size(), limits::kRdmaSegmentsMax);  // fits one descriptor
  EXPECT_LE(limits::kFrameHeaderBytes + limits::kFrameMetaBytesMax + limits::kRdmaDescriptorBytesMax,
            limits::kRdmaControlBytesMax);
}

}  // namespace
}  // namespace millpond::rdma
