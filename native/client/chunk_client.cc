#include "client/chunk_client.h"

#include "common/crc32c.h"
#include "transport/rdma/rdma_select.h"
#include "transport/rdma/rdma_transport.h"

namespace millpond {

// One request in flight: the transport call plus how to decode and deliver its reply.
struct ChunkClient::Op : ClientCall {
  std::string address;
  std::function<void(Op*)> decode;  // runs once with status/replyMeta filled in
};

namespace {

Status DecodeMeta(const std::string& meta, ChunkMeta* out) {
  frame::Reader r(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
  return r.Get(out) ? Status::OK() : Status::Protocol("malformed chunk metadata in reply");
}

}  // namespace

// The decoder of replies whose meta is one ChunkMeta (write, stat, commit).
template <typename OpT>
std::function<void(OpT*)> MetaReply(ChunkClient::MetaDone done) {
  return [done = std::move(done)](OpT* o) {
    ChunkMeta meta;
    Status s = o->status;
    if (s.ok()) s = DecodeMeta(o->replyMeta, &meta);
    done(s, meta);
  };
}

Status ChunkClient::Create(const ChunkClientOptions& options, std::unique_ptr<ChunkClient>* out) {
  if (options.inflightBytesMax == 0 || options.inflightBytesMax > limits::kClientInflightBytesMax)
    return Status::InvalidArgument("inflightBytesMax must be 1.." + std::to_string(limits::kClientInflightBytesMax));
  if (options.localReadThreads > limits::kLocalReadThreadsMax)
    return Status::InvalidArgument("localReadThreads must be 0.." + std::to_string(limits::kLocalReadThreadsMax));
  if (options.connectionsPerServer == 0 || options.connectionsPerServer > limits::kClientConnectionsPerServerMax)
    return Status::InvalidArgument("connectionsPerServer must be 1.." +
                                   std::to_string(limits::kClientConnectionsPerServerMax));
  std::unique_ptr<ChunkClient> client(new ChunkClient(options));
  ClientTransportOptions t;
  t.inflightBytesMax = options.inflightBytesMax;
  t.connectionsPerServer = options.connectionsPerServer;
  t.credentials = options.credentials;
  TransportKind kind;
  MP_RETURN_IF_ERROR(ResolveTransport(options.transport, &kind));
  if (kind == TransportKind::kRdma) client->rdma_ = NewRdmaClientTransport(t);
  client->tcp_ = NewTcpClientTransport(t);
  if (options.transport == TransportChoice::kAuto && options.localReadThreads > 0)
    client->local_ = std::make_unique<LocalReader>(options.localReadThreads, options.timeoutMs);
  *out = std::move(client);
  return Status::OK();
}

ChunkClient::~ChunkClient() { Close(); }

void ChunkClient::Close() {
  if (local_) local_->Close();  // first: its reads may fall back to the transports
  if (rdma_) rdma_->Close();
  if (tcp_) tcp_->Close();
}

void ChunkClient::Submit(const std::string& address, Op* op) {
  op->address = address;
  op->timeoutMs = options_.timeoutMs;
  op->done = [this](ClientCall* c) { OnDone(c); };
  bool useRdma = false;
  if (rdma_) {
    MutexLock lock(&mu_);
    useRdma = tcpOnly_.count(address) == 0;
  }
  (useRdma ? rdma_ : tcp_)->Submit(address, op);
}

void ChunkClient::OnDone(ClientCall* call) {
  Op* op = static_cast<Op*>(call);
  // auto: a server without RDMA refuses the handshake; remember it and go over TCP.
  if (op->status.code() == StatusCode::kNoDevice && op->carriedBy == TransportKind::kRdma &&
      options_.transport == TransportChoice::kAuto) {
    {
      MutexLock lock(&mu_);
      tcpOnly_.insert(op->address);
    }
    op->status = Status::OK();
    op->replyMeta.clear();
    op->replyDataBytes = 0;
    tcp_->Submit(op->address, op);
    return;
  }
  op->decode(op);
  delete op;
}

void ChunkClient::Read(const std::string& address, const frame::ReadArgs& args, char* dst, ReadDone done,
                       const Capability* cap, Abandon abandon) {
  // The local socket authorizes by capability only: a node's read (authenticated by its key
  // on the network, with no capability) goes remote.
  if (local_ && (cap != nullptr || !options_.credentials.present())) {
    switch (local_->RouteFor(address)) {
      case LocalReader::Route::kLocal: {
        bool hasCap = cap != nullptr;
        Capability c = hasCap ? *cap : Capability();
        auto fallback = [this, address, args, hasCap, c, dst, done, abandon] {
          ReadRemote(address, args, hasCap ? &c : nullptr, dst, done, abandon);
        };
        if (local_->Submit(address, args, cap, dst, done, std::move(fallback), abandon)) return;
        break;
      }
      case LocalReader::Route::kProbe:
        ProbeLocal(address);
        break;
      case LocalReader::Route::kRemote:
        break;
    }
  }
  ReadRemote(address, args, cap, dst, std::move(done), std::move(abandon));
}

void ChunkClient::ProbeLocal(const std::string& address) {
  Op* op = new Op;
  op->opcode = frame::kLocalInfo;
  op->decode = [this](Op* o) { local_->Learned(o->address, o->status, o->replyMeta); };
  Submit(address, op);
}

void ChunkClient::ReadRemote(const std::string& address, const frame::ReadArgs& args, const Capability* cap,
                             char* dst, ReadDone done, Abandon abandon) {
  Op* op = new Op;
  op->opcode = frame::kRead;
  op->abandon = std::move(abandon);
  // A block-aligned read asks for the stored block CRCs and checks the bytes here, once (the
  // server then sends them straight from the version file); other reads the server checks.
  frame::ReadArgs sent = args;
  if (args.offset % limits::kChunkBlockBytes == 0) sent.flags |= frame::kReadBlockCrcs;
  frame::Put(&op->meta, sent);
  if (cap) frame::PutCapability(&op->meta, *cap);
  op->replyData.push_back({dst, args.length});
  op->decode = [done = std::move(done), dst](Op* o) {
    ChunkMeta meta;
    Status s = o->status;
    frame::Reader r(reinterpret_cast<const uint8_t*>(o->replyMeta.data()), o->replyMeta.size());
    if (s.ok() && !r.Get(&meta)) s = Status::Protocol("malformed chunk metadata in reply");
    if (s.ok() && r.remaining() > 0) {  // the stored block CRCs of the bytes sent (frame::kReadBlockCrcs)
      std::vector<uint32_t> crcs;
      if (!r.GetBlockCrcs(&crcs, limits::kChunkBlocksMax) || crcs.size() != frame::BlockCount(o->replyDataBytes))
        s = Status::Protocol("malformed block checksums in read reply");
      if (s.ok()) s = frame::VerifyBlockCrcs(dst, o->replyDataBytes, crcs.data(), ("read of " + o->address).c_str());
    }
    done(s, meta, s.ok() ? o->replyDataBytes : 0);
  };
  Submit(address, op);
}

void ChunkClient::Write(const std::string& address, frame::WriteArgs args, const char* data, MetaDone done,
                        const Capability* cap, Abandon abandon) {
  Op* op = new Op;
  op->opcode = frame::kWrite;
  op->abandon = std::move(abandon);
  // The block CRCs travel with the data (computed here once, unless a chain forward passes on
  // the ones it received); the server checks the data against them as it stores it.
  args.flags |= frame::kWriteBlockCrcs;
  if (args.blockCrcs.size() == frame::BlockCount(args.length))
    args.payloadChecksum = frame::CombineBlockCrcs(args.blockCrcs.data(), args.length);
  else
    args.payloadChecksum = frame::ComputeBlockCrcs(data, args.length, &args.blockCrcs);
  frame::Put(&op->meta, args);
  if (cap) frame::PutCapability(&op->meta, *cap);
  op->payload = data;
  op->payloadBytes = args.length;
  op->decode = MetaReply<Op>(std::move(done));
  Submit(address, op);
}

void ChunkClient::BatchRead(const std::string& address, const std::vector<frame::ReadArgs>& reads,
                            const std::vector<char*>& dsts, BatchDone done, const std::vector<Capability>* caps,
                            Abandon abandon) {
  Op* op = new Op;
  op->opcode = frame::kBatchRead;
  op->abandon = std::move(abandon);
  frame::PutU32(&op->meta, static_cast<uint32_t>(reads.size()));
  for (size_t i = 0; i < reads.size(); i++) {
    frame::Put(&op->meta, reads[i]);
    op->replyData.push_back({dsts[i], reads[i].length});
  }
  if (caps) {
    frame::PutU32(&op->meta, static_cast<uint32_t>(caps->size()));
    for (const auto& c : *caps) frame::PutCapability(&op->meta, c);
  }
  size_t count = reads.size();
  op->decode = [done = std::move(done), count](Op* o) {
    std::vector<BatchReadResult> results;
    Status s = o->status;
    if (s.ok()) {
      frame::Reader r(reinterpret_cast<const uint8_t*>(o->replyMeta.data()), o->replyMeta.size());
      results.resize(count);
      for (auto& e : results) {
        int32_t code;
        if (!r.GetI32(&code) || !r.GetU32(&e.bytesRead)) {
          s = Status::Protocol("malformed batch read reply");
          break;
        }
        e.code = Status::CodeFromWire(code);
      }
    }
    done(s, results);
  };
  Submit(address, op);
}

void ChunkClient::Stat(const std::string& address, const ChunkId& chunk, MetaDone done, const Capability* cap) {
  Op* op = new Op;
  op->opcode = frame::kStat;
  frame::PutChunkId(&op->meta, chunk);
  if (cap) frame::PutCapability(&op->meta, *cap);
  op->decode = MetaReply<Op>(std::move(done));
  Submit(address, op);
}

void ChunkClient::Commit(const std::string& address, const frame::CommitArgs& args, MetaDone done) {
  Op* op = new Op;
  op->opcode = frame::kCommit;
  frame::Put(&op->meta, args);
  op->decode = MetaReply<Op>(std::move(done));
  Submit(address, op);
}

void ChunkClient::Remove(const std::string& address, const ChunkId& chunk, Done done) {
  Op* op = new Op;
  op->opcode = frame::kRemove;
  frame::PutChunkId(&op->meta, chunk);
  op->decode = [done = std::move(done)](Op* o) { done(o->status); };
  Submit(address, op);
}

void ChunkClient::Ping(const std::string& address, Done done) {
  Op* op = new Op;
  op->opcode = frame::kPing;
  op->decode = [done = std::move(done)](Op* o) { done(o->status); };
  Submit(address, op);
}

void ChunkClient::List(const std::string& address, const frame::ListArgs& args, ListDone done) {
  Op* op = new Op;
  op->opcode = frame::kList;
  frame::Put(&op->meta, args);
  op->decode = [done = std::move(done)](Op* o) {
    std::vector<ChunkListEntry> entries;
    Status s = o->status;
    frame::Reader r(reinterpret_cast<const uint8_t*>(o->replyMeta.data()), o->replyMeta.size());
    uint32_t count = 0;
    if (s.ok() && (!r.GetU32(&count) || count > limits::kListReplyEntriesMax))
      s = Status::Protocol("malformed list reply");
    for (uint32_t i = 0; s.ok() && i < count; i++) {
      ChunkListEntry e;
      if (!r.Get(&e)) {
        s = Status::Protocol("malformed list reply");
        break;
      }
      entries.push_back(e);
    }
    done(s, entries);
  };
  Submit(address, op);
}

}  // namespace millpond
