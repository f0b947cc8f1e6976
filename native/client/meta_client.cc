#include "client/meta_client.h"

#include <random>

#include "client/reply_fields.h"

namespace millpond {

namespace {

const ReplyFields kReply("meta");

Status GetType(const MsgValue& m, FileType* out) {
  const MsgValue* v = m.Find("type");
  if (v != nullptr && v->is_str() && v->str() == "file") {
    *out = FileType::kFile;
  } else if (v != nullptr && v->is_str() && v->str() == "dir") {
    *out = FileType::kDir;
  } else if (v != nullptr && v->is_str() && v->str() == "symlink") {
    *out = FileType::kSymlink;
  } else {
    return kReply.Bad("type must be \"file\", \"dir\" or \"symlink\"");
  }
  return Status::OK();
}

Status DecodeLayout(const MsgValue& m, Layout* out) {
  if (!m.is_map()) return kReply.Bad("layout must be a map");
  MP_RETURN_IF_ERROR(kReply.U32(m, "chunkSizeBytes", &out->chunkSizeBytes));
  MP_RETURN_IF_ERROR(kReply.U32(m, "stripeSize", &out->stripeSize));
  MP_RETURN_IF_ERROR(kReply.U32(m, "chainTableId", &out->chainTableId));
  MP_RETURN_IF_ERROR(kReply.U32(m, "chainTableVersion", &out->chainTableVersion));
  const MsgValue* seed = m.Find("seed");
  out->hasSeed = seed != nullptr && !seed->is_nil();
  out->seed = 0;
  if (out->hasSeed) MP_RETURN_IF_ERROR(kReply.U32(m, "seed", &out->seed));
  return Status::OK();
}

std::string RandomClientId() {
  std::random_device rd;  // /dev/urandom
  std::string id(limits::kRpcClientIdBytes, '\0');
  for (size_t i = 0; i < id.size(); i += 4) {
    uint32_t r = rd();
    for (size_t j = 0; j < 4 && i + j < id.size(); j++) id[i + j] = static_cast<char>(r >> (8 * j));
  }
  return id;
}

Status CheckPath(const std::string& path) {
  if (path.size() > limits::kMetaPathBytesMax) {
    return Status(StatusCode::kNameTooLong, "path of " + std::to_string(path.size()) +
                                                " bytes exceeds " +
                                                std::to_string(limits::kMetaPathBytesMax));
  }
  return Status::OK();
}

}  // namespace

Status MetaClient::DecodeInode(const MsgValue& v, Inode* out) {
  if (!v.is_map()) return kReply.Bad("inode must be a map");
  Inode n;
  MP_RETURN_IF_ERROR(kReply.U64(v, "id", &n.id));
  MP_RETURN_IF_ERROR(GetType(v, &n.type));
  MP_RETURN_IF_ERROR(kReply.U32(v, "mode", &n.mode));
  MP_RETURN_IF_ERROR(kReply.U32(v, "uid", &n.uid));
  MP_RETURN_IF_ERROR(kReply.U32(v, "gid", &n.gid));
  MP_RETURN_IF_ERROR(kReply.U64(v, "length", &n.lengthBytes));
  MP_RETURN_IF_ERROR(kReply.I64(v, "ctimeMs", &n.ctimeMs));
  MP_RETURN_IF_ERROR(kReply.I64(v, "mtimeMs", &n.mtimeMs));
  const MsgValue* layout = v.Find("layout");
  if (layout == nullptr) return kReply.Bad("inode without layout");
  MP_RETURN_IF_ERROR(DecodeLayout(*layout, &n.layout));
  MP_RETURN_IF_ERROR(kReply.U64(v, "parent", &n.parent));
  const MsgValue* unlinked = v.Find("unlinked");
  n.unlinked = unlinked != nullptr && unlinked->is_bool() && unlinked->bool_value();
  const MsgValue* nlink = v.Find("nlink");
  if (nlink != nullptr && !nlink->is_nil()) MP_RETURN_IF_ERROR(kReply.U32(v, "nlink", &n.nlink));
  if (n.type == FileType::kSymlink) {
    const MsgValue* target = v.Find("target");
    if (target == nullptr || !target->is_str()) return kReply.Bad("a symlink's target must be a string");
    n.target = target->str();
  }
  *out = std::move(n);
  return Status::OK();
}

Status MetaClient::DecodeReaddir(const MsgValue& v, ReaddirPage* out) {
  const MsgValue* entries = v.Find("entries");
  const MsgValue* more = v.Find("more");
  if (entries == nullptr || !entries->is_array()) return kReply.Bad("entries must be an array");
  if (more == nullptr || !more->is_bool()) return kReply.Bad("more must be a boolean");
  ReaddirPage page;
  page.more = more->bool_value();
  page.entries.reserve(entries->array().size());
  for (const MsgValue& e : entries->array()) {
    DirEntry d;
    const MsgValue* name = e.Find("name");
    if (name == nullptr || !name->is_str()) return kReply.Bad("entry name must be a string");
    d.name = name->str();
    MP_RETURN_IF_ERROR(kReply.U64(e, "inode", &d.inode));
    MP_RETURN_IF_ERROR(GetType(e, &d.type));
    const MsgValue* attrs = e.Find("attrs");
    if (attrs != nullptr && !attrs->is_nil()) {
      MP_RETURN_IF_ERROR(DecodeInode(*attrs, &d.attrs));
      d.hasAttrs = true;
    }
    page.entries.push_back(std::move(d));
  }
  *out = std::move(page);
  return Status::OK();
}

Status MetaClient::DecodeOpen(const MsgValue& v, OpenResult* out) {
  const MsgValue* inode = v.Find("inode");
  if (inode == nullptr) return kReply.Bad("open result without inode");
  OpenResult r;
  MP_RETURN_IF_ERROR(DecodeInode(*inode, &r.inode));
  const MsgValue* session = v.Find("session");
  if (session != nullptr && !session->is_nil()) {
    if (!session->is_str()) return kReply.Bad("session must be a string");
    r.session = session->str();
  }
  const MsgValue* timeout = v.Find("sessionTimeoutMs");
  if (timeout != nullptr && !timeout->is_nil()) {
    uint64_t ms = 0;
    if (!timeout->GetUint64(&ms) || ms > UINT32_MAX) return kReply.Bad("sessionTimeoutMs must be a 32-bit unsigned integer");
    r.sessionTimeoutMs = static_cast<uint32_t>(ms);
  }
  const MsgValue* cap = v.Find("capability");
  if (cap != nullptr && !cap->is_nil()) {
    if (!cap->is_bin() || cap->str().size() != kCapabilityBytes) return kReply.Bad("capability must be 36 bytes");
    r.capability = Capability::Decode(reinterpret_cast<const uint8_t*>(cap->str().data()));
    r.hasCapability = true;
  }
  *out = std::move(r);
  return Status::OK();
}

Status MetaClient::Create(const MetaClientOptions& options, std::unique_ptr<MetaClient>* out) {
  if (!options.clientId.empty() && options.clientId.size() != limits::kRpcClientIdBytes) {
    return Status::InvalidArgument("clientId must be " + std::to_string(limits::kRpcClientIdBytes) +
                                   " bytes");
  }
  if (options.sessionHeartbeatMs == 0 || options.sessionHeartbeatMs > 3600000)
    return Status::InvalidArgument("sessionHeartbeatMs must be 1..3600000");
  std::unique_ptr<RpcClient> rpc;
  MP_RETURN_IF_ERROR(RpcClient::Create(options.rpc, &rpc));
  std::string id = options.clientId.empty() ? RandomClientId() : options.clientId;
  out->reset(new MetaClient(std::move(rpc), options.user, options.token, options.actAs, std::move(id),
                            options.sessionHeartbeatMs));
  return Status::OK();
}

MetaClient::MetaClient(std::unique_ptr<RpcClient> rpc, MetaUser user, std::string token, bool actAs, std::string clientId,
                       uint32_t heartbeatMs)
    : rpc_(std::move(rpc)), user_(std::move(user)), token_(std::move(token)), actAs_(actAs), clientId_(std::move(clientId)),
      heartbeatMs_(heartbeatMs) {}

MetaClient::~MetaClient() {
  {
    std::lock_guard<std::mutex> lock(heartbeatMu_);
    stopping_ = true;
  }
  heartbeatCv_.notify_all();
  if (heartbeat_.joinable()) heartbeat_.join();
  rpc_->Close();  // before the members heartbeat callbacks touch are destroyed
}

void MetaClient::AddSession(uint64_t inode, const std::string& session,
                            std::chrono::steady_clock::time_point sentAt, uint32_t sessionTimeoutMs) {
  std::lock_guard<std::mutex> lock(heartbeatMu_);
  // The open confirms only its own session: with others open (maybe ended while this client
  // was quiet), the lease waits for a heartbeat that names them all.
  bool alone = true;
  for (const auto& entry : sessions_) alone = alone && ended_.count(entry.first) != 0;
  sessions_[session] = inode;
  if (alone && sessionTimeoutMs > 0) leaseUntil_ = std::max(leaseUntil_, sentAt + std::chrono::milliseconds(sessionTimeoutMs / 2));
  if (!heartbeat_.joinable()) heartbeat_ = std::thread([this] { HeartbeatLoop(); });
}

void MetaClient::RemoveSession(const std::string& session) {
  std::lock_guard<std::mutex> lock(heartbeatMu_);
  sessions_.erase(session);
  ended_.erase(session);
}

MsgValue MetaClient::HeartbeatParams(bool* all) {
  MsgValue list = MsgValue::Array();
  size_t named = 0, open = 0;
  for (const auto& [session, inode] : sessions_) {
    if (ended_.count(session) != 0) continue;
    open++;
    if (named == limits::kMetaHeartbeatSessionsMax) continue;
    MsgValue entry = MsgValue::Map();
    entry.Add("inode", MsgValue::Uint(inode)).Add("session", MsgValue::Str(session));
    list.Push(std::move(entry));
    named++;
  }
  *all = named == open;
  MsgValue p = Params(true);
  p.Add("sessions", std::move(list));
  return p;
}

void MetaClient::ApplyHeartbeat(std::chrono::steady_clock::time_point sentAt, bool all, const MsgValue& reply) {
  if (!reply.is_map()) return;  // an older service (nil): no lease, every check asks
  std::lock_guard<std::mutex> lock(heartbeatMu_);
  const MsgValue* ended = reply.Find("ended");
  if (ended != nullptr && ended->is_array()) {
    for (const MsgValue& s : ended->array()) {
      if (s.is_str() && sessions_.count(s.str()) != 0) ended_.insert(s.str());
    }
  }
  const MsgValue* timeout = reply.Find("sessionTimeoutMs");
  uint64_t ms = 0;
  if (all && timeout != nullptr && timeout->GetUint64(&ms) && ms <= UINT32_MAX) {
    leaseUntil_ = std::max(leaseUntil_, sentAt + std::chrono::milliseconds(ms / 2));
  }
}

Status MetaClient::CheckSession(const std::string& session) {
  {
    std::lock_guard<std::mutex> lock(heartbeatMu_);
    if (ended_.count(session) == 0 && std::chrono::steady_clock::now() < leaseUntil_) return Status::OK();
  }
  bool ended;
  {
    std::lock_guard<std::mutex> lock(heartbeatMu_);
    ended = ended_.count(session) != 0;
  }
  if (!ended) {
    bool all;
    MsgValue p;
    {
      std::lock_guard<std::mutex> lock(heartbeatMu_);
      p = HeartbeatParams(&all);
    }
    auto sentAt = std::chrono::steady_clock::now();
    MsgValue r;
    MP_RETURN_IF_ERROR(Mutate("meta.heartbeat", std::move(p), &r));
    ApplyHeartbeat(sentAt, all, r);
    std::lock_guard<std::mutex> lock(heartbeatMu_);
    ended = ended_.count(session) != 0;
  }
  if (ended) {
    return Status(StatusCode::kBadHandle, "write session " + session +
                                              " was ended by the meta service (this client was quiet past its session timeout)");
  }
  return Status::OK();
}

void MetaClient::HeartbeatLoop() {
  std::unique_lock<std::mutex> lock(heartbeatMu_);
  while (!heartbeatCv_.wait_for(lock, std::chrono::milliseconds(heartbeatMs_), [this] { return stopping_; })) {
    if (sessions_.empty()) continue;
    bool all;
    MsgValue p = HeartbeatParams(&all);
    auto sentAt = std::chrono::steady_clock::now();
    lock.unlock();  // the callback takes the lock (and may run before CallAsync returns)
    // One attempt, not awaited: a lost beat is made up by the next, and the service waits
    // several beats before it ends sessions.
    rpc_->CallAsync("meta.heartbeat", std::move(p), /*retry=*/false,
                    [this, sentAt, all](const Status& s, MsgValue r) {
                      if (s.ok()) ApplyHeartbeat(sentAt, all, r);
                    });
    lock.lock();
  }
}

MsgValue MetaClient::Params(bool mutation, const MetaUser* as) const {
  const MetaUser& who = as != nullptr ? *as : user_;
  MsgValue user = MsgValue::Map();
  user.Add("uid", MsgValue::Uint(who.uid)).Add("gid", MsgValue::Uint(who.gid));
  if (!who.gids.empty()) {
    MsgValue gids = MsgValue::Array();
    for (uint32_t g : who.gids) gids.Push(MsgValue::Uint(g));
    user.Add("gids", std::move(gids));
  }
  MsgValue params = MsgValue::Map();
  if (token_.empty()) {
    params.Add("user", std::move(user));
  } else {
    params.Add("token", MsgValue::Str(token_));
    if (actAs_ || as != nullptr) params.Add("actAs", std::move(user));
  }
  if (mutation) params.Add("clientId", MsgValue::Bin(clientId_));
  return params;
}

Status MetaClient::Read(const char* method, MsgValue params, MsgValue* result) {
  return rpc_->Call(method, std::move(params), result, /*retry=*/true);
}

Status MetaClient::Mutate(const char* method, MsgValue params, MsgValue* result) {
  // Retried under the same requestId: the clientId in params makes the server apply it once.
  return rpc_->Call(method, std::move(params), result, /*retry=*/true);
}

Status MetaClient::Stat(const std::string& path, Inode* out, const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue p = Params(false, as);
  p.Add("path", MsgValue::Str(path));
  MsgValue r;
  MP_RETURN_IF_ERROR(Read("meta.stat", std::move(p), &r));
  return DecodeInode(r, out);
}

Status MetaClient::Readdir(const std::string& path, const std::string& after, uint32_t limit,
                           ReaddirPage* out, const MetaUser* as) {
  return ReaddirImpl(path, after, limit, /*plus=*/false, out, as);
}

Status MetaClient::ReaddirPlus(const std::string& path, const std::string& after, uint32_t limit,
                               ReaddirPage* out, const MetaUser* as) {
  return ReaddirImpl(path, after, limit, /*plus=*/true, out, as);
}

Status MetaClient::ReaddirImpl(const std::string& path, const std::string& after, uint32_t limit,
                               bool plus, ReaddirPage* out, const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  if (limit > limits::kMetaReaddirEntriesMax) {
    return Status::InvalidArgument("readdir limit must be in [1, " +
                                   std::to_string(limits::kMetaReaddirEntriesMax) + "]");
  }
  MsgValue p = Params(false, as);
  p.Add("path", MsgValue::Str(path));
  if (!after.empty()) p.Add("after", MsgValue::Str(after));
  if (limit != 0) p.Add("limit", MsgValue::Uint(limit));
  if (plus) p.Add("plus", MsgValue::Bool(true));
  MsgValue r;
  MP_RETURN_IF_ERROR(Read("meta.readdir", std::move(p), &r));
  return DecodeReaddir(r, out);
}

Status MetaClient::Mkdir(const std::string& path, uint32_t mode, bool recursive, Inode* out,
                         const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path))
      .Add("mode", MsgValue::Uint(mode))
      .Add("recursive", MsgValue::Bool(recursive));
  MsgValue r;
  MP_RETURN_IF_ERROR(Mutate("meta.mkdir", std::move(p), &r));
  return DecodeInode(r, out);
}

Status MetaClient::Open(const std::string& path, const OpenFlags& flags, uint32_t mode,
                        OpenResult* out, const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue f = MsgValue::Map();
  // In the order of test/fixtures/protocol/open-request.
  f.Add("write", MsgValue::Bool(flags.write))
      .Add("create", MsgValue::Bool(flags.create))
      .Add("exclusive", MsgValue::Bool(flags.exclusive))
      .Add("truncate", MsgValue::Bool(flags.truncate))
      .Add("append", MsgValue::Bool(flags.append))
      .Add("read", MsgValue::Bool(flags.read));
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path)).Add("flags", std::move(f)).Add("mode", MsgValue::Uint(mode));
  MsgValue r;
  auto sentAt = std::chrono::steady_clock::now();
  MP_RETURN_IF_ERROR(Mutate("meta.open", std::move(p), &r));
  MP_RETURN_IF_ERROR(DecodeOpen(r, out));
  if (!out->session.empty()) AddSession(out->inode.id, out->session, sentAt, out->sessionTimeoutMs);
  return Status::OK();
}

Status MetaClient::Close(uint64_t inode, const std::string& session, uint64_t lengthBytes,
                         Inode* out, const MetaUser* as) {
  MsgValue p = Params(true, as);
  p.Add("inode", MsgValue::Uint(inode))
      .Add("session", MsgValue::Str(session))
      .Add("length", MsgValue::Uint(lengthBytes));
  MsgValue r;
  Status s = Mutate("meta.close", std::move(p), &r);
  RemoveSession(session);  // ended either way: closed now, or ended by the service before
  MP_RETURN_IF_ERROR(s);
  return DecodeInode(r, out);
}

Status MetaClient::Unlink(const std::string& path, const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path));
  return Mutate("meta.unlink", std::move(p), nullptr);
}

Status MetaClient::Rmdir(const std::string& path, const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path));
  return Mutate("meta.rmdir", std::move(p), nullptr);
}

Status MetaClient::Rename(const std::string& from, const std::string& to, const MetaUser* as,
                          bool noReplace) {
  MP_RETURN_IF_ERROR(CheckPath(from));
  MP_RETURN_IF_ERROR(CheckPath(to));
  MsgValue p = Params(true, as);
  p.Add("from", MsgValue::Str(from)).Add("to", MsgValue::Str(to));
  if (noReplace) p.Add("noReplace", MsgValue::Bool(true));
  return Mutate("meta.rename", std::move(p), nullptr);
}

Status MetaClient::Truncate(const std::string& path, uint64_t lengthBytes, Inode* out,
                            const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path)).Add("length", MsgValue::Uint(lengthBytes));
  MsgValue r;
  MP_RETURN_IF_ERROR(Mutate("meta.truncate", std::move(p), &r));
  return DecodeInode(r, out);
}

Status MetaClient::SetLayout(const std::string& path, const Layout& layout, Inode* out,
                             const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue l = MsgValue::Map();
  if (layout.chunkSizeBytes != 0) l.Add("chunkSizeBytes", MsgValue::Uint(layout.chunkSizeBytes));
  if (layout.stripeSize != 0) l.Add("stripeSize", MsgValue::Uint(layout.stripeSize));
  if (layout.chainTableId != 0) l.Add("chainTableId", MsgValue::Uint(layout.chainTableId));
  if (layout.chainTableVersion != 0) l.Add("chainTableVersion", MsgValue::Uint(layout.chainTableVersion));
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path)).Add("layout", std::move(l));
  MsgValue r;
  MP_RETURN_IF_ERROR(Mutate("meta.setLayout", std::move(p), &r));
  return DecodeInode(r, out);
}

Status MetaClient::Link(const std::string& existing, const std::string& to, Inode* out,
                        const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(existing));
  MP_RETURN_IF_ERROR(CheckPath(to));
  MsgValue p = Params(true, as);
  p.Add("existing", MsgValue::Str(existing)).Add("to", MsgValue::Str(to));
  MsgValue r;
  MP_RETURN_IF_ERROR(Mutate("meta.link", std::move(p), &r));
  return DecodeInode(r, out);
}

Status MetaClient::Symlink(const std::string& target, const std::string& path, Inode* out,
                           const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MP_RETURN_IF_ERROR(CheckPath(target));  // the same bound as a path
  MsgValue p = Params(true, as);
  p.Add("target", MsgValue::Str(target)).Add("path", MsgValue::Str(path));
  MsgValue r;
  MP_RETURN_IF_ERROR(Mutate("meta.symlink", std::move(p), &r));
  return DecodeInode(r, out);
}

Status MetaClient::Readlink(const std::string& path, std::string* target, const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  MsgValue p = Params(false, as);
  p.Add("path", MsgValue::Str(path));
  MsgValue r;
  MP_RETURN_IF_ERROR(Read("meta.readlink", std::move(p), &r));
  const MsgValue* t = r.Find("target");
  if (t == nullptr || !t->is_str()) return kReply.Bad("readlink result without a target");
  *target = t->str();
  return Status::OK();
}

Status MetaClient::Setattr(const std::string& path, const SetAttrs& attrs, Inode* out,
                           const MetaUser* as) {
  MP_RETURN_IF_ERROR(CheckPath(path));
  if (attrs.hasMtime && attrs.mtimeMs < 0) return Status::InvalidArgument("mtimeMs must be >= 0");
  MsgValue p = Params(true, as);
  p.Add("path", MsgValue::Str(path));
  if (attrs.hasMode) p.Add("mode", MsgValue::Uint(attrs.mode));
  if (attrs.hasUid) p.Add("uid", MsgValue::Uint(attrs.uid));
  if (attrs.hasGid) p.Add("gid", MsgValue::Uint(attrs.gid));
  if (attrs.hasMtime) p.Add("mtimeMs", MsgValue::Uint(static_cast<uint64_t>(attrs.mtimeMs)));
  MsgValue r;
  MP_RETURN_IF_ERROR(Mutate("meta.setattr", std::move(p), &r));
  return DecodeInode(r, out);
}

}  // namespace millpond
