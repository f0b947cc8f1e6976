// millpond.duckdb_extension: `millpond://path` in DuckDB, on the native FileClient (design §6).
// Positional reads from many threads at once, sequential writes (COPY ... TO ... (FORMAT
// parquet)), glob with `*`, `**` and `?`, sizes and modification times, remove and rename.
// `SELECT * FROM millpond_metrics()` reads the process's millpond client counters (bytes read and
// written, chunk requests): the engine measures each task's I/O with it.
//
// The cluster comes from the settings millpond_meta and millpond_mgmtd (comma-separated
// tcp:// endpoints), else from MILLPOND_META / MILLPOND_MGMTD. The caller's identity (design
// §10): millpond_token (else millpond_token_file, else MILLPOND_TOKEN / MILLPOND_TOKEN_FILE) and
// the cluster's CURVE server key millpond_server_key (else MILLPOND_SERVER_KEY); meta checks
// every request as the token's user. This file is an adapter like
// native/addon: DuckDB's FileSystem contract is exceptions, the core's is Status; errors
// cross here as IOException with the millpond code in the message.
#include "duckdb.hpp"
#include "duckdb/common/file_opener.hpp"
#include "duckdb/common/file_system.hpp"
#include "duckdb/common/string_util.hpp"
#include "duckdb/function/table_function.hpp"
#include "duckdb/main/config.hpp"
#include "duckdb/main/database.hpp"
#include "duckdb/main/extension/extension_loader.hpp"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>

#include "client/client_auth.h"
#include "client/file_client.h"

namespace duckdb {

namespace {

constexpr const char* kPrefix = "millpond://";
// DuckDB derives some paths (e.g. the temporary file of an overwriting COPY) by path
// arithmetic that collapses "//": every "millpond:/..." spelling names the same namespace.
constexpr const char* kScheme = "millpond:";

[[noreturn]] void Fail(const millpond::Status& s, const string& what) {
  throw IOException("millpond: %s: %s: %s", what, s.CodeName(), s.message());
}

// Whether a stat or readdir found its path: a path that is not there (or not a directory where one
// was needed) is false; any other error (EAUTH, ETIMEDOUT, ...) is raised, never taken for "absent",
// so a refused client is told so instead of "No files found".
bool Found(const millpond::Status& s, const string& what) {
  if (s.ok()) return true;
  if (s.code() == millpond::StatusCode::kNotFound || s.code() == millpond::StatusCode::kNotDir) return false;
  Fail(s, what);
}

// "millpond:/a/b", "millpond://a/b" and "millpond:///a/b" all name /a/b in the namespace.
string NamespacePath(const string& url) {
  size_t at = strlen(kScheme);
  while (at < url.size() && url[at] == '/') at++;
  string p = "/" + url.substr(at);
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

vector<string> SplitEndpoints(const string& text) {
  vector<string> out;
  for (auto& e : StringUtil::Split(text, ',')) {
    string t = StringUtil::Replace(e, " ", "");
    if (!t.empty()) out.push_back(t);
  }
  return out;
}

string Setting(optional_ptr<FileOpener> opener, const char* name, const char* env) {
  Value v;
  if (opener && FileOpener::TryGetCurrentSetting(opener, name, v) && !v.IsNull()) {
    string s = v.ToString();
    if (!s.empty()) return s;
  }
  const char* e = std::getenv(env);
  return e ? e : "";
}

// One FileClient per (meta, mgmtd, transport, token, server key), shared by every database of
// the process; never removed (a client lives as long as the process, so do its counters).
struct Clients {
  std::mutex mu;
  std::map<string, std::unique_ptr<millpond::FileClient>> byKey;
};
Clients& AllClients() {
  static Clients clients;
  return clients;
}

millpond::FileClient& ClientFor(optional_ptr<FileOpener> opener) {
  auto& mu = AllClients().mu;
  auto& clients = AllClients().byKey;
  string meta = Setting(opener, "millpond_meta", "MILLPOND_META");
  string mgmtd = Setting(opener, "millpond_mgmtd", "MILLPOND_MGMTD");
  string transport = Setting(opener, "millpond_transport", "MILLPOND_TRANSPORT");
  if (meta.empty() || mgmtd.empty())
    throw IOException("millpond: set millpond_meta and millpond_mgmtd (or MILLPOND_META and MILLPOND_MGMTD)");
  string token = Setting(opener, "millpond_token", "MILLPOND_TOKEN");
  if (token.empty()) {
    string tokenFile = Setting(opener, "millpond_token_file", "MILLPOND_TOKEN_FILE");
    if (!tokenFile.empty()) {
      std::ifstream in(tokenFile);
      if (!in || !std::getline(in, token)) throw IOException("millpond: cannot read token file %s", tokenFile);
    }
  }
  token = StringUtil::Replace(StringUtil::Replace(token, "\n", ""), " ", "");
  string serverKey = Setting(opener, "millpond_server_key", "MILLPOND_SERVER_KEY");
  millpond::FileClientOptions o;
  millpond::Status parsed = millpond::ParseTransportChoice(transport.empty() ? "auto" : transport, &o.chunks.transport);
  if (!parsed.ok()) Fail(parsed, "millpond_transport");
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = clients[meta + "|" + mgmtd + "|" + transport + "|" + token + "|" + serverKey];
  if (!slot) {
    o.token = token;
    o.meta.rpc.endpoints = SplitEndpoints(meta);
    o.mgmtd.rpc.endpoints = SplitEndpoints(mgmtd);
    if (!token.empty()) {
      millpond::Status a = millpond::ApplyTokenCurve(token, serverKey, &o.meta.rpc);
      if (a.ok()) a = millpond::ApplyTokenCurve(token, serverKey, &o.mgmtd.rpc);
      if (!a.ok()) Fail(a, "millpond_token / millpond_server_key");
      o.meta.token = token;
    }
    millpond::Status s = millpond::FileClient::Create(o, &slot);
    if (!s.ok()) Fail(s, "connect to " + meta);
  }
  return *slot;
}

class MillpondFileHandle : public FileHandle {
 public:
  MillpondFileHandle(FileSystem& fs, const string& path, FileOpenFlags flags,
                     std::unique_ptr<millpond::FileHandle> file)
      : FileHandle(fs, path, flags), file_(std::move(file)) {}
  ~MillpondFileHandle() override { file_->Close(); }
  void Close() override {
    millpond::Status s = file_->Close();
    if (!s.ok()) Fail(s, "close " + path);
  }
  millpond::FileHandle& file() { return *file_; }
  idx_t position = 0;

 private:
  std::unique_ptr<millpond::FileHandle> file_;
};

MillpondFileHandle& Millpond(FileHandle& h) { return h.Cast<MillpondFileHandle>(); }

class MillpondFileSystem : public FileSystem {
 public:
  string GetName() const override { return "MillpondFileSystem"; }
  bool CanHandleFile(const string& path) override { return StringUtil::StartsWith(path, string(kScheme) + "/"); }

  unique_ptr<FileHandle> OpenFile(const string& url, FileOpenFlags flags, optional_ptr<FileOpener> opener) override {
    auto& client = ClientFor(opener);
    millpond::OpenFlags o;
    o.read = flags.OpenForReading();
    o.write = flags.OpenForWriting();
    o.create = flags.CreateFileIfNotExists() || flags.OverwriteExistingFile();
    o.truncate = flags.OverwriteExistingFile();
    o.append = flags.OpenForAppending();
    std::unique_ptr<millpond::FileHandle> file;
    millpond::Status s = client.Open(NamespacePath(url), o, 0644, &file);
    if (s.code() == millpond::StatusCode::kNotFound && flags.ReturnNullIfNotExists()) return nullptr;
    if (!s.ok()) Fail(s, "open " + url);
    return make_uniq<MillpondFileHandle>(*this, url, flags, std::move(file));
  }

  // Positional reads: DuckDB issues them from many threads, each on its own range.
  void Read(FileHandle& h, void* buffer, int64_t bytes, idx_t location) override {
    size_t got = 0;
    millpond::Status s = Millpond(h).file().Read(location, static_cast<size_t>(bytes), static_cast<char*>(buffer), &got);
    if (!s.ok()) Fail(s, "read " + h.path);
    if (got != static_cast<size_t>(bytes))
      throw IOException("millpond: read %s: %lld bytes at %llu, only %llu exist", h.path, (long long)bytes,
                        (unsigned long long)location, (unsigned long long)got);
  }

  int64_t Read(FileHandle& h, void* buffer, int64_t bytes) override {
    auto& m = Millpond(h);
    size_t got = 0;
    millpond::Status s = m.file().Read(m.position, static_cast<size_t>(bytes), static_cast<char*>(buffer), &got);
    if (!s.ok()) Fail(s, "read " + h.path);
    m.position += got;
    return static_cast<int64_t>(got);
  }

  void Write(FileHandle& h, void* buffer, int64_t bytes, idx_t location) override {
    millpond::Status s = Millpond(h).file().Write(location, static_cast<const char*>(buffer), static_cast<size_t>(bytes));
    if (!s.ok()) Fail(s, "write " + h.path);
  }

  int64_t Write(FileHandle& h, void* buffer, int64_t bytes) override {
    auto& m = Millpond(h);
    Write(h, buffer, bytes, m.position);
    m.position += static_cast<idx_t>(bytes);
    return bytes;
  }

  void FileSync(FileHandle& h) override {
    millpond::Status s = Millpond(h).file().Flush();
    if (!s.ok()) Fail(s, "sync " + h.path);
  }

  int64_t GetFileSize(FileHandle& h) override { return static_cast<int64_t>(Millpond(h).file().lengthBytes()); }
  timestamp_t GetLastModifiedTime(FileHandle& h) override {
    return Timestamp::FromEpochMs(Millpond(h).file().inode().mtimeMs);
  }
  FileType GetFileType(FileHandle&) override { return FileType::FILE_TYPE_REGULAR; }
  void Seek(FileHandle& h, idx_t location) override { Millpond(h).position = location; }
  idx_t SeekPosition(FileHandle& h) override { return Millpond(h).position; }
  bool CanSeek() override { return true; }
  bool OnDiskFile(FileHandle&) override { return false; }
  void Truncate(FileHandle& h, int64_t length) override {
    millpond::Inode inode;
    millpond::Status s = Millpond(h).file().Flush();
    if (s.ok()) s = ClientFor(nullptr).meta()->Truncate(NamespacePath(h.path), static_cast<uint64_t>(length), &inode);
    if (!s.ok()) Fail(s, "truncate " + h.path);
  }

  bool FileExists(const string& url, optional_ptr<FileOpener> opener) override {
    millpond::Inode inode;
    millpond::Status s = ClientFor(opener).meta()->Stat(NamespacePath(url), &inode);
    return Found(s, "stat " + url) && inode.type == millpond::FileType::kFile;
  }
  bool DirectoryExists(const string& url, optional_ptr<FileOpener> opener) override {
    millpond::Inode inode;
    millpond::Status s = ClientFor(opener).meta()->Stat(NamespacePath(url), &inode);
    return Found(s, "stat " + url) && inode.type == millpond::FileType::kDir;
  }
  void CreateDirectory(const string& url, optional_ptr<FileOpener> opener) override {
    millpond::Inode inode;
    millpond::Status s = ClientFor(opener).meta()->Mkdir(NamespacePath(url), 0755, true, &inode);
    if (!s.ok() && s.code() != millpond::StatusCode::kExists) Fail(s, "mkdir " + url);
  }
  void RemoveDirectory(const string& url, optional_ptr<FileOpener> opener) override {
    auto& meta = *ClientFor(opener).meta();
    string path = NamespacePath(url);
    for (const auto& e : List(meta, path)) {
      string child = url + "/" + e.name;
      if (e.type == millpond::FileType::kDir) RemoveDirectory(child, opener);
      else RemoveFile(child, opener);
    }
    millpond::Status s = meta.Rmdir(path);
    if (!s.ok()) Fail(s, "rmdir " + url);
  }
  void RemoveFile(const string& url, optional_ptr<FileOpener> opener) override {
    millpond::Status s = ClientFor(opener).meta()->Unlink(NamespacePath(url));
    if (!s.ok()) Fail(s, "remove " + url);
  }
  bool TryRemoveFile(const string& url, optional_ptr<FileOpener> opener) override {
    return ClientFor(opener).meta()->Unlink(NamespacePath(url)).ok();
  }
  void MoveFile(const string& source, const string& target, optional_ptr<FileOpener> opener) override {
    millpond::Status s = ClientFor(opener).meta()->Rename(NamespacePath(source), NamespacePath(target));
    if (!s.ok()) Fail(s, "rename " + source);
  }

  bool ListFiles(const string& url, const std::function<void(const string&, bool)>& callback,
                 FileOpener* opener) override {
    auto& meta = *ClientFor(opener).meta();
    millpond::Inode inode;
    if (!Found(meta.Stat(NamespacePath(url), &inode), "stat " + url) || inode.type != millpond::FileType::kDir) return false;
    for (const auto& e : List(meta, NamespacePath(url))) callback(e.name, e.type == millpond::FileType::kDir);
    return true;
  }

  // `*` and `?` match within one name, `**` across directories.
  vector<OpenFileInfo> Glob(const string& pattern, FileOpener* opener) override {
    auto& meta = *ClientFor(opener).meta();
    vector<string> parts = StringUtil::Split(NamespacePath(pattern), '/');
    string root;
    size_t i = 0;
    for (; i < parts.size() && parts[i].find_first_of("*?[") == string::npos; i++) root += "/" + parts[i];
    if (root.empty()) root = "/";
    vector<string> rest(parts.begin() + static_cast<long>(i), parts.end());
    vector<string> found;
    if (rest.empty()) {
      millpond::Inode inode;
      if (Found(meta.Stat(root, &inode), "stat " + root)) found.push_back(root);
    } else {
      Walk(meta, root, rest, 0, &found);
    }
    std::sort(found.begin(), found.end());
    found.erase(std::unique(found.begin(), found.end()), found.end());
    vector<OpenFileInfo> out;
    for (auto& f : found) out.emplace_back(string(kPrefix) + f.substr(1));  // millpond://a/b
    return out;
  }

 private:
  static vector<millpond::DirEntry> List(millpond::MetaClient& meta, const string& path) {
    vector<millpond::DirEntry> all;
    string after;
    for (;;) {
      millpond::ReaddirPage page;
      millpond::Status s = meta.Readdir(path, after, 0, &page);
      if (!s.ok()) Fail(s, "readdir " + path);
      all.insert(all.end(), page.entries.begin(), page.entries.end());
      if (!page.more || page.entries.empty()) return all;
      after = page.entries.back().name;
    }
  }

  static std::regex Matcher(const string& part) {
    string re = "^";
    for (char c : part) {
      if (c == '*') re += "[^/]*";
      else if (c == '?') re += "[^/]";
      else if (string("\\^$.|+()[]{}").find(c) != string::npos) re += string("\\") + c;
      else re += c;
    }
    return std::regex(re + "$");
  }

  static void Walk(millpond::MetaClient& meta, const string& dir, const vector<string>& parts, size_t at,
                   vector<string>* found) {
    auto join = [&](const string& name) { return dir == "/" ? "/" + name : dir + "/" + name; };
    vector<millpond::DirEntry> entries;
    millpond::ReaddirPage probe;
    if (!Found(meta.Readdir(dir, "", 1, &probe), "readdir " + dir)) return;  // not a directory (or gone)
    entries = List(meta, dir);
    const string& part = parts[at];
    bool last = at + 1 == parts.size();
    if (part == "**") {
      if (last) {
        for (auto& e : entries) found->push_back(join(e.name));
      } else {
        Walk(meta, dir, parts, at + 1, found);  // ** matches no directory at all
      }
      for (auto& e : entries)
        if (e.type == millpond::FileType::kDir) Walk(meta, join(e.name), parts, at, found);
      return;
    }
    std::regex re = Matcher(part);
    for (auto& e : entries) {
      if (!std::regex_match(e.name, re)) continue;
      if (last) found->push_back(join(e.name));
      else if (e.type == millpond::FileType::kDir) Walk(meta, join(e.name), parts, at + 1, found);
    }
  }
};

// millpond_metrics(): one row of the file client's counters (a column each, named as
// client/file_client_counters.h does) summed over this process's millpond clients, i.e. what
// every database of the process did through millpond:// since the extension was loaded.
// Monotonic; a caller wanting one query's share takes the difference of two calls, which is
// exact only while nothing else in the process reads or writes millpond.
struct MetricsState : GlobalTableFunctionState {
  bool done = false;
};

unique_ptr<FunctionData> MetricsBind(ClientContext&, TableFunctionBindInput&, vector<LogicalType>& types,
                                     vector<string>& names) {
  for (const auto& f : millpond::kFileClientCounterFields) {
    names.emplace_back(f.snakeName);
    types.emplace_back(LogicalType::UBIGINT);
  }
  return make_uniq<TableFunctionData>();
}

unique_ptr<GlobalTableFunctionState> MetricsInit(ClientContext&, TableFunctionInitInput&) {
  return make_uniq<MetricsState>();
}

void MetricsScan(ClientContext&, TableFunctionInput& input, DataChunk& output) {
  auto& state = input.global_state->Cast<MetricsState>();
  if (state.done) return;  // an empty chunk ends the scan
  state.done = true;
  uint64_t sums[sizeof millpond::kFileClientCounterFields / sizeof millpond::kFileClientCounterFields[0]] = {};
  {
    auto& all = AllClients();
    std::lock_guard<std::mutex> lock(all.mu);
    for (const auto& entry : all.byKey) {
      if (!entry.second) continue;  // a Create that failed leaves its slot empty
      const auto& counters = entry.second->counters();
      for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++)
        sums[i] += (counters.*millpond::kFileClientCounterFields[i].member).load(std::memory_order_relaxed);
    }
  }
  for (size_t i = 0; i < sizeof sums / sizeof sums[0]; i++) output.SetValue(i, 0, Value::UBIGINT(sums[i]));
  output.SetCardinality(1);
}

void LoadInternal(ExtensionLoader& loader) {
  auto& db = loader.GetDatabaseInstance();
  auto& config = DBConfig::GetConfig(db);
  config.AddExtensionOption("millpond_meta", "millpond meta server endpoints (tcp://host:port,...)",
                            LogicalType::VARCHAR, Value(""));
  config.AddExtensionOption("millpond_mgmtd", "millpond mgmtd endpoints (tcp://host:port,...)",
                            LogicalType::VARCHAR, Value(""));
  config.AddExtensionOption("millpond_transport",
                            "millpond data path: auto (local descriptors on this host, else RDMA, else TCP), tcp or rdma",
                            LogicalType::VARCHAR, Value(""));
  config.AddExtensionOption("millpond_token", "millpond token (mpt1...) the queries present; see millpond_token_file",
                            LogicalType::VARCHAR, Value(""));
  config.AddExtensionOption("millpond_token_file", "file holding the millpond token (mode 0600)",
                            LogicalType::VARCHAR, Value(""));
  config.AddExtensionOption("millpond_server_key", "the cluster's CURVE server public key (cluster.json serverKey)",
                            LogicalType::VARCHAR, Value(""));
  db.GetFileSystem().RegisterSubSystem(make_uniq<MillpondFileSystem>());
  loader.RegisterFunction(TableFunction("millpond_metrics", {}, MetricsScan, MetricsBind, MetricsInit));
  // Cache Parquet footers (keyed by path and modification time): a footer costs a round trip
  // to a storage target, and tasks of one job read the same files' footers again and again.
  try {
    config.SetOptionByName("parquet_metadata_cache", Value::BOOLEAN(true));
  } catch (std::exception&) {
    // a DuckDB without the parquet extension: nothing to cache
  }
}

}  // namespace

}  // namespace duckdb

extern "C" {
DUCKDB_CPP_EXTENSION_ENTRY(millpond, loader) { duckdb::LoadInternal(loader); }
}
