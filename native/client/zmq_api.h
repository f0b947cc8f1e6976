// libzmq, loaded with dlopen: neither the build (no zmq.h, no libzmq3-dev) nor the addon's
// link needs it. Only the few C functions and constants the control plane uses are declared
// here, with the values of libzmq's stable ABI (libzmq.so.5, zmq.h of 4.x).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace millpond {

namespace zmq {
// Socket types.
constexpr int kPair = 0;
constexpr int kDealer = 5;
constexpr int kRouter = 6;
// Socket options.
constexpr int kLinger = 17;
constexpr int kReconnectIvl = 18;
constexpr int kMaxMsgSize = 22;        // int64_t value
constexpr int kSndHwm = 23;
constexpr int kRcvHwm = 24;
constexpr int kReconnectIvlMax = 21;
constexpr int kRcvMore = 13;
constexpr int kLastEndpoint = 32;
constexpr int kImmediate = 39;
// CURVE (libzmq built with libsodium): keys as 40-character Z85 strings.
constexpr int kCurveServer = 47;
constexpr int kCurvePublicKey = 48;
constexpr int kCurveSecretKey = 49;
constexpr int kCurveServerKey = 50;
constexpr size_t kCurveKeyBytes = 32;
constexpr size_t kCurveKeyZ85Chars = 40;
// zmq_socket_monitor events (stable since libzmq 4.3): a monitor socket receives two frames
// per event, [uint16 event, uint32 value] (host order, 6 bytes) and the peer's address.
constexpr int kEventConnected = 0x0001;
constexpr int kEventDisconnected = 0x0200;
constexpr int kEventHandshakeSucceeded = 0x1000;
constexpr int kEventHandshakeFailedProtocol = 0x2000;  // e.g. CURVE vs NULL, undecryptable HELLO
constexpr int kEventHandshakeFailedAuth = 0x4000;      // the server's ZAP refused (value: 400...)
// Send/receive flags.
constexpr int kDontWait = 1;
constexpr int kSndMore = 2;
// zmq_poll events.
constexpr short kPollIn = 1;
constexpr short kPollOut = 2;
// libzmq's own errno values (ZMQ_HAUSNUMERO + n).
constexpr int kHausnumero = 156384712;
constexpr int kETerm = kHausnumero + 53;

// zmq_msg_t: 64 opaque bytes, pointer-aligned.
struct alignas(sizeof(void*)) Msg {
  unsigned char opaque[64];
};

// zmq_pollitem_t on POSIX.
struct PollItem {
  void* socket;
  int fd;
  short events;
  short revents;
};
}  // namespace zmq

struct ZmqApi {
  void* (*ctxNew)();
  int (*ctxTerm)(void*);
  void* (*socket)(void*, int);
  int (*close)(void*);
  int (*setsockopt)(void*, int, const void*, size_t);
  int (*getsockopt)(void*, int, void*, size_t*);
  int (*bind)(void*, const char*);
  int (*connect)(void*, const char*);
  int (*send)(void*, const void*, size_t, int);
  int (*msgInit)(zmq::Msg*);
  int (*msgRecv)(zmq::Msg*, void*, int);
  int (*msgClose)(zmq::Msg*);
  void* (*msgData)(zmq::Msg*);
  size_t (*msgSize)(const zmq::Msg*);
  int (*msgMore)(const zmq::Msg*);
  int (*poll)(zmq::PollItem*, int, long);
  int (*errnum)();
  const char* (*strerror)(int);
  void (*version)(int*, int*, int*);
  // CURVE helpers: a Z85 public key (41 bytes with NUL) of a Z85 secret key; Z85 of bytes.
  int (*curvePublic)(char* z85Public, const char* z85Secret);
  // zmq_socket_monitor(socket, "inproc://...", events).
  int (*socketMonitor)(void*, const char*, int);
  char* (*z85Encode)(char* dest, const uint8_t* data, size_t size);

  // "what: <zmq_strerror(zmq_errno())>" as a Status (EAGAIN → kTimedOut, ETERM → kClosed).
  Status Error(const std::string& what) const;
};

// Loads libzmq once per process: MILLPOND_LIBZMQ, else a libzmq already loaded in the process
// (the `zeromq` package's addon under node), else the system's libzmq.so.5 (zmq_api.cc).
// kNotSupported, saying what was tried, when none loads or a symbol is missing. Thread-safe.
Status LoadZmqApi(const ZmqApi** api);

}  // namespace millpond
