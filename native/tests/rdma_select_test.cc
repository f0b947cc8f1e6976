// Transport selection and the behaviour of the RDMA transports on a host without a device.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <unistd.h>

#include "transport/rdma/rdma_select.h"
#include "transport/rdma/rdma_transport.h"

namespace millpond {
namespace {

Status NoDeviceProbe(std::string* detail) {
  *detail = "ibv_get_device_list: the kernel has no RDMA support (ENOSYS)";
  return Status::NoDevice(*detail);
}
Status DeviceProbe(std::string* detail) {
  *detail = "rxe0 port 1";
  return Status::OK();
}

TEST(RdmaSelect, TcpIsTcp) {
  TransportKind k = TransportKind::kRdma;
  ASSERT_TRUE(ResolveTransport(TransportChoice::kTcp, &k, nullptr, NoDeviceProbe).ok());
  EXPECT_EQ(k, TransportKind::kTcp);
}

TEST(RdmaSelect, AutoFallsBackToTcpWithoutADevice) {
  TransportKind k = TransportKind::kRdma;
  std::string note;
  ASSERT_TRUE(ResolveTransport(TransportChoice::kAuto, &k, &note, NoDeviceProbe).ok());
  EXPECT_EQ(k, TransportKind::kTcp);
  EXPECT_NE(note.find("ENOSYS"), std::string::npos) << note;
}

TEST(RdmaSelect, AutoTakesRdmaWithADevice) {
  TransportKind k = TransportKind::kTcp;
  ASSERT_TRUE(ResolveTransport(TransportChoice::kAuto, &k, nullptr, DeviceProbe).ok());
  EXPECT_EQ(k, TransportKind::kRdma);
}

TEST(RdmaSelect, RdmaWithoutADeviceIsENODEV) {
  TransportKind k;
  Status s = ResolveTransport(TransportChoice::kRdma, &k, nullptr, NoDeviceProbe);
  EXPECT_EQ(s.code(), StatusCode::kNoDevice);
  EXPECT_STREQ(s.CodeName(), "ENODEV");
}

TEST(RdmaSelect, FallbackIsLoggedOnlyAtDebugLevelAndOncePerProcess) {
  ::unsetenv("MILLPOND_LOGGED_TRANSPORT");
  ::unsetenv("MILLPOND_LOG_LEVEL");
  EXPECT_FALSE(LogTransportFallbackOnce("quiet by default"));
  ::setenv("MILLPOND_LOG_LEVEL", "debug", 1);
  EXPECT_TRUE(LogTransportFallbackOnce("first"));
  EXPECT_FALSE(LogTransportFallbackOnce("second"));
  // The marker another copy of the core (the DuckDB extension) would see says this process.
  EXPECT_STREQ(std::getenv("MILLPOND_LOGGED_TRANSPORT"), std::to_string(::getpid()).c_str());
  // A marker inherited from a parent process does not silence this one.
  ::setenv("MILLPOND_LOGGED_TRANSPORT", "1", 1);
  EXPECT_TRUE(LogTransportFallbackOnce("child"));
  ::unsetenv("MILLPOND_LOG_LEVEL");
}

// The real probe on this machine. CI hosts have no RDMA device; inside the soft-RoCE VM
// (MILLPOND_EXPECT_RDMA=1) there is one.
TEST(RdmaSelect, RealProbeMatchesTheMachine) {
  std::string detail;
  Status s = RdmaProbe(&detail);
  EXPECT_FALSE(detail.empty());
  const char* expect = std::getenv("MILLPOND_EXPECT_RDMA");
  if (expect && std::string(expect) == "1") {
    EXPECT_TRUE(s.ok()) << s.ToString();
  } else if (!s.ok()) {
    EXPECT_EQ(s.code(), StatusCode::kNoDevice) << s.ToString();
    std::printf("probe: %s\n", detail.c_str());
  }
}

TEST(RdmaSelect, TransportsWithoutADeviceFailWithENODEV) {
  std::string detail;
  if (RdmaProbe(&detail).ok()) GTEST_SKIP() << "this machine has an RDMA device: " << detail;
  auto server = NewRdmaServerTransport();
  EXPECT_EQ(server->Start(ServerTransportOptions{}, nullptr).code(), StatusCode::kNoDevice);
  server->Stop();
  auto client = NewRdmaClientTransport(ClientTransportOptions{});
  ClientCall call;
  call.opcode = frame::kPing;
  bool done = false;
  call.done = [&](ClientCall*) { done = true; };
  client->Submit("127.0.0.1:1", &call);
  EXPECT_TRUE(done);
  EXPECT_EQ(call.status.code(), StatusCode::kNoDevice);
  EXPECT_EQ(call.carriedBy, TransportKind::kRdma);
  client->Close();
}

}  // namespace
}  // namespace millpond
