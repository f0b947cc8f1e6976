// The msgpack codec against the byte fixtures the TS protocol writes (test/fixtures/protocol):
// each .bin decodes to what its .json describes and re-encodes to the same bytes. Then
// encodings at every width boundary, and malformed input (truncations, random bytes, lies
// about lengths, deep nesting) that must give kProtocol, never a crash.
#include <dirent.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_support.h"
#include "client/meta_client.h"
#include "common/limits.h"
#include "common/msgpack.h"

namespace millpond {
namespace {

using millpond::testing::RepoRoot;
using millpond::testing::ReadFile;

// ---------------------------------------------------------------- helpers

bool IsDir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return false;
  ::closedir(d);
  return true;
}

std::string Hex(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// A small JSON reader for the fixture descriptions: objects keep their key order, integers
// become msgpack integers, {"$u64": "n"} a u64 and {"$bin": "hex"} bytes.
class Json {
 public:
  explicit Json(const std::string& text) : s_(text) {}

  MsgValue Parse() {
    MsgValue v = Value();
    Space();
    EXPECT_EQ(at_, s_.size()) << "trailing JSON";
    return v;
  }

 private:
  void Space() {
    while (at_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[at_]))) at_++;
  }
  std::string String() {
    EXPECT_EQ(s_[at_], '"');
    at_++;
    std::string out;
    while (s_[at_] != '"') {
      if (s_[at_] == '\\') {
        at_++;
        char c = s_[at_++];
        if (c == 'n') out.push_back('\n');
        else if (c == 't') out.push_back('\t');
        else if (c == 'u') {
          out.push_back(static_cast<char>(std::stoi(s_.substr(at_, 4), nullptr, 16)));  // ASCII only
          at_ += 4;
        } else out.push_back(c);
      } else {
        out.push_back(s_[at_++]);
      }
    }
    at_++;
    return out;
  }
  MsgValue Value() {
    Space();
    char c = s_[at_];
    if (c == '{') {
      at_++;
      MsgValue m = MsgValue::Map();
      Space();
      if (s_[at_] == '}') {
        at_++;
        return m;
      }
      for (;;) {
        Space();
        std::string key = String();
        Space();
        at_++;  // ':'
        m.Add(key, Value());
        Space();
        if (s_[at_++] == '}') break;
      }
      if (m.map().size() == 1 && m.map()[0].first == "$u64") {
        return MsgValue::Uint(std::stoull(m.map()[0].second.str()));
      }
      if (m.map().size() == 1 && m.map()[0].first == "$bin") {
        return MsgValue::Bin(Unhex(m.map()[0].second.str()));
      }
      return m;
    }
    if (c == '[') {
      at_++;
      MsgValue a = MsgValue::Array();
      Space();
      if (s_[at_] == ']') {
        at_++;
        return a;
      }
      for (;;) {
        a.Push(Value());
        Space();
        if (s_[at_++] == ']') break;
      }
      return a;
    }
    if (c == '"') return MsgValue::Str(String());
    if (s_.compare(at_, 4, "true") == 0) return at_ += 4, MsgValue::Bool(true);
    if (s_.compare(at_, 5, "false") == 0) return at_ += 5, MsgValue::Bool(false);
    if (s_.compare(at_, 4, "null") == 0) return at_ += 4, MsgValue::Nil();
    size_t end = at_;
    while (end < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[end])) || s_[end] == '-' ||
                               s_[end] == '.' || s_[end] == 'e' || s_[end] == 'E' || s_[end] == '+')) {
      end++;
    }
    std::string num = s_.substr(at_, end - at_);
    at_ = end;
    if (num.find_first_of(".eE") != std::string::npos) return MsgValue::Float(std::stod(num));
    return MsgValue::Int(std::stoll(num));
  }

  const std::string& s_;
  size_t at_ = 0;
};

struct Fixture {
  std::string name;
  std::string bin;
  MsgValue json;      // the whole .json file
  MsgValue expected;  // the envelope it describes
};

std::vector<Fixture> LoadFixtures() {
  std::string dir = RepoRoot() + "/test/fixtures/protocol";
  std::vector<Fixture> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() < 5 || name.substr(name.size() - 5) != ".json") continue;
    Fixture f;
    f.name = name.substr(0, name.size() - 5);
    std::string text = ReadFile(dir + "/" + name);
    f.json = Json(text).Parse();
    f.bin = ReadFile(dir + "/" + f.name + ".bin");
    const MsgValue* kind = f.json.Find("kind");
    const MsgValue* m = f.json.Find("message");
    MsgValue env = MsgValue::Array();
    env.Push(MsgValue::Uint(limits::kProtocolVersion)).Push(*m->Find("requestId"));
    if (kind->str() == "request") {
      env.Push(*m->Find("method")).Push(*m->Find("params"));
    } else {
      bool ok = m->Find("ok")->bool_value();
      env.Push(MsgValue::Bool(ok)).Push(ok ? *m->Find("result") : *m->Find("error"));
    }
    f.expected = std::move(env);
    out.push_back(std::move(f));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const Fixture& a, const Fixture& b) { return a.name < b.name; });
  return out;
}

// ---------------------------------------------------------------- fixtures

TEST(MsgpackFixtures, EveryFixtureDecodesAndReencodesByteIdentical) {
  ASSERT_TRUE(IsDir(RepoRoot() + "/test/fixtures/protocol"))
      << "no fixtures under " << RepoRoot() << " (set MILLPOND_REPO_ROOT)";
  std::vector<Fixture> fixtures = LoadFixtures();
  ASSERT_GE(fixtures.size(), 9u);
  for (const Fixture& f : fixtures) {
    SCOPED_TRACE(f.name);
    ASSERT_FALSE(f.bin.empty());
    EXPECT_EQ(Hex(f.bin), f.json.Find("hex")->str()) << ".bin and .json hex disagree";
    MsgValue decoded;
    Status s = MsgDecode(f.bin, &decoded);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(decoded, f.expected) << decoded.DebugString() << "\n vs\n" << f.expected.DebugString();
    EXPECT_EQ(Hex(MsgEncode(decoded)), Hex(f.bin)) << "re-encoding differs";
    EXPECT_EQ(Hex(MsgEncode(f.expected)), Hex(f.bin)) << "encoding the description differs";
  }
}

TEST(MsgpackFixtures, MetaRepliesDecodeIntoStructs) {
  std::vector<Fixture> fixtures = LoadFixtures();
  int seen = 0;
  for (const Fixture& f : fixtures) {
    MsgValue v;
    ASSERT_TRUE(MsgDecode(f.bin, &v).ok());
    if (f.name == "open-reply") {
      OpenResult r;
      Status s = MetaClient::DecodeOpen(v.array()[3], &r);
      ASSERT_TRUE(s.ok()) << s.ToString();
      EXPECT_EQ(r.inode.id, 4097u);
      EXPECT_EQ(r.inode.type, FileType::kFile);
      EXPECT_EQ(r.inode.mode, 0644u);
      EXPECT_EQ(r.inode.lengthBytes, 12582912u);
      EXPECT_EQ(r.inode.ctimeMs, 1700000000000);
      EXPECT_EQ(r.inode.mtimeMs, 1700000000500);
      EXPECT_EQ(r.inode.layout.chunkSizeBytes, 4u << 20);
      EXPECT_EQ(r.inode.layout.stripeSize, 3u);
      EXPECT_EQ(r.inode.layout.chainTableId, 1u);
      EXPECT_EQ(r.inode.layout.chainTableVersion, 1u);
      EXPECT_TRUE(r.inode.layout.hasSeed);
      EXPECT_EQ(r.inode.layout.seed, 2534090413u);
      EXPECT_EQ(r.inode.parent, 0u);
      EXPECT_EQ(r.session, "b2dc5deb95bbfa7598552e38c3722a8f");
      seen++;
    } else if (f.name == "readdir-reply") {
      ReaddirPage page;
      Status s = MetaClient::DecodeReaddir(v.array()[3], &page);
      ASSERT_TRUE(s.ok()) << s.ToString();
      ASSERT_EQ(page.entries.size(), 2u);
      EXPECT_EQ(page.entries[0].name, "part-0");
      EXPECT_EQ(page.entries[0].inode, 4097u);
      EXPECT_EQ(page.entries[1].type, FileType::kDir);
      EXPECT_FALSE(page.more);
      seen++;
    }
  }
  EXPECT_EQ(seen, 2);
}

// ---------------------------------------------------------------- encodings

std::string Enc(const MsgValue& v) { return Hex(MsgEncode(v)); }

TEST(MsgpackEncode, IntegersTakeTheSmallestFormAsMsgpackrWritesThem) {
  EXPECT_EQ(Enc(MsgValue::Uint(0)), "00");
  EXPECT_EQ(Enc(MsgValue::Uint(0x7f)), "7f");
  EXPECT_EQ(Enc(MsgValue::Uint(0x80)), "cc80");
  EXPECT_EQ(Enc(MsgValue::Uint(0xff)), "ccff");
  EXPECT_EQ(Enc(MsgValue::Uint(0x100)), "cd0100");
  EXPECT_EQ(Enc(MsgValue::Uint(0xffff)), "cdffff");
  EXPECT_EQ(Enc(MsgValue::Uint(0x10000)), "ce00010000");
  EXPECT_EQ(Enc(MsgValue::Uint(0xffffffffu)), "ceffffffff");
  EXPECT_EQ(Enc(MsgValue::Uint(0x100000000ull)), "d30000000100000000");
  EXPECT_EQ(Enc(MsgValue::Uint(0x7fffffffffffffffull)), "d37fffffffffffffff");
  EXPECT_EQ(Enc(MsgValue::Uint(0x8000000000000000ull)), "cf8000000000000000");
  EXPECT_EQ(Enc(MsgValue::Int(-1)), "ff");
  EXPECT_EQ(Enc(MsgValue::Int(-32)), "e0");
  EXPECT_EQ(Enc(MsgValue::Int(-33)), "d0df");
  EXPECT_EQ(Enc(MsgValue::Int(-128)), "d080");
  EXPECT_EQ(Enc(MsgValue::Int(-129)), "d1ff7f");
  EXPECT_EQ(Enc(MsgValue::Int(-32768)), "d18000");
  EXPECT_EQ(Enc(MsgValue::Int(-32769)), "d2ffff7fff");
  EXPECT_EQ(Enc(MsgValue::Int(INT32_MIN)), "d280000000");
  EXPECT_EQ(Enc(MsgValue::Int(int64_t{INT32_MIN} - 1)), "d3ffffffff7fffffff");
  EXPECT_EQ(Enc(MsgValue::Int(INT64_MIN)), "d38000000000000000");
  EXPECT_EQ(Enc(MsgValue::Int(5)), "05");  // non-negative Int is a Uint
  EXPECT_EQ(MsgValue::Int(5), MsgValue::Uint(5));
}

TEST(MsgpackEncode, StringsBinsArraysMapsAtEveryWidth) {
  EXPECT_EQ(Enc(MsgValue::Str("")), "a0");
  EXPECT_EQ(MsgEncode(MsgValue::Str(std::string(31, 'x'))).substr(0, 1), "\xbf");
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Str(std::string(32, 'x'))).substr(0, 2)), "d920");
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Str(std::string(255, 'x'))).substr(0, 2)), "d9ff");
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Str(std::string(256, 'x'))).substr(0, 3)), "da0100");
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Str(std::string(65536, 'x'))).substr(0, 5)), "db00010000");
  EXPECT_EQ(Enc(MsgValue::Bin("")), "c400");
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Bin(std::string(256, 'x'))).substr(0, 3)), "c50100");
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Bin(std::string(65536, 'x'))).substr(0, 5)), "c600010000");
  EXPECT_EQ(Enc(MsgValue::Nil()), "c0");
  EXPECT_EQ(Enc(MsgValue::Bool(true)), "c3");
  EXPECT_EQ(Enc(MsgValue::Float(1.5)), "cb3ff8000000000000");
  std::vector<MsgValue> items(15, MsgValue::Nil());
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Array(items)).substr(0, 1)), "9f");
  items.push_back(MsgValue::Nil());
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Array(items)).substr(0, 3)), "dc0010");
  items.resize(65536);
  EXPECT_EQ(Hex(MsgEncode(MsgValue::Array(items)).substr(0, 5)), "dd00010000");
  MsgValue m = MsgValue::Map();
  for (int i = 0; i < 16; i++) m.Add("k" + std::to_string(i), MsgValue::Uint(i));
  std::string bytes = MsgEncode(m);
  EXPECT_EQ(Hex(bytes.substr(0, 3)), "de0010");
  MsgValue back;
  ASSERT_TRUE(MsgDecode(bytes, &back).ok());
  EXPECT_EQ(back, m);  // keys in order
  EXPECT_EQ(back.map()[15].first, "k15");
}

TEST(MsgpackDecode, AcceptsEveryWidthAndFloat32) {
  struct Case {
    const char* hex;
    MsgValue want;
  } cases[] = {
      {"cc05", MsgValue::Uint(5)},
      {"cd0005", MsgValue::Uint(5)},
      {"ce00000005", MsgValue::Uint(5)},
      {"cf0000000000000005", MsgValue::Uint(5)},
      {"cfffffffffffffffff", MsgValue::Uint(UINT64_MAX)},
      {"d005", MsgValue::Uint(5)},
      {"d0fb", MsgValue::Int(-5)},
      {"d1fffb", MsgValue::Int(-5)},
      {"d2fffffffb", MsgValue::Int(-5)},
      {"d3fffffffffffffffb", MsgValue::Int(-5)},
      {"ca3fc00000", MsgValue::Float(1.5)},
      {"d90161", MsgValue::Str("a")},
      {"da000161", MsgValue::Str("a")},
      {"db0000000161", MsgValue::Str("a")},
      {"dc000101", MsgValue::Array({MsgValue::Uint(1)})},
      {"de0001a16101", MsgValue::Map({{"a", MsgValue::Uint(1)}})},
  };
  for (const Case& c : cases) {
    MsgValue v;
    Status s = MsgDecode(Unhex(c.hex), &v);
    ASSERT_TRUE(s.ok()) << c.hex << ": " << s.ToString();
    EXPECT_EQ(v, c.want) << c.hex << " -> " << v.DebugString();
  }
  uint64_t u;
  int64_t i;
  MsgValue big;
  ASSERT_TRUE(MsgDecode(Unhex("cfffffffffffffffff"), &big).ok());
  EXPECT_TRUE(big.GetUint64(&u));
  EXPECT_FALSE(big.GetInt64(&i));  // above INT64_MAX
}

// ---------------------------------------------------------------- malformed

void ExpectProtocol(const std::string& bytes, const std::string& what) {
  MsgValue v;
  Status s = MsgDecode(bytes, &v);
  EXPECT_EQ(s.code(), StatusCode::kProtocol) << what << ": " << Hex(bytes) << " -> " << s.ToString();
  EXPECT_FALSE(s.message().empty());
}

TEST(MsgpackMalformed, NamedCases) {
  ExpectProtocol("", "empty");
  ExpectProtocol(Unhex("c1"), "never-used tag");
  ExpectProtocol(Unhex("d40100"), "fixext");
  ExpectProtocol(Unhex("c70100"), "ext8");
  ExpectProtocol(Unhex("0102"), "trailing bytes");
  ExpectProtocol(Unhex("81"), "map without entries");
  ExpectProtocol(Unhex("810102"), "integer map key");
  ExpectProtocol(Unhex("dbffffffff61"), "str32 longer than the message");
  ExpectProtocol(Unhex("c6ffffffff"), "bin32 longer than the message");
  ExpectProtocol(Unhex("ddffffffff"), "array32 count beyond the message");
  ExpectProtocol(Unhex("dfffffffff"), "map32 count beyond the message");
  ExpectProtocol(Unhex("cd01"), "truncated uint16");
  ExpectProtocol(Unhex("cb3ff8"), "truncated float64");
  ExpectProtocol(std::string(limits::kMsgDepthMax + 1, '\x91') + '\x00', "nesting too deep");
  MsgValue v;
  EXPECT_TRUE(MsgDecode(std::string(limits::kMsgDepthMax - 1, '\x91') + '\x00', &v).ok());
  // Many small values: the element bound holds before memory does.
  std::string many = Unhex("dd00050000") + std::string(0x50000, '\xc0');
  EXPECT_EQ(MsgDecode(many, &v).code(), StatusCode::kProtocol);
  std::string huge(limits::kMsgBytesMax + 1, '\0');
  EXPECT_EQ(MsgDecode(huge, &v).code(), StatusCode::kTooLarge);
}

TEST(MsgpackMalformed, EveryTruncationOfEveryFixtureIsRefused) {
  std::vector<Fixture> fixtures = LoadFixtures();
  ASSERT_FALSE(fixtures.empty());
  for (const Fixture& f : fixtures) {
    for (size_t n = 0; n < f.bin.size(); n++) {
      ExpectProtocol(f.bin.substr(0, n), f.name + " cut at " + std::to_string(n));
    }
  }
}

TEST(MsgpackMalformed, RandomBytesAndFlippedFixturesNeverCrash) {
  std::mt19937_64 rng(12345);
  std::vector<Fixture> fixtures = LoadFixtures();
  int ok = 0, refused = 0;
  for (int round = 0; round < 20000; round++) {
    std::string bytes;
    if (round % 2 == 0 || fixtures.empty()) {
      bytes.resize(rng() % 64);
      for (char& c : bytes) c = static_cast<char>(rng());
    } else {
      bytes = fixtures[rng() % fixtures.size()].bin;
      for (int flips = 1 + rng() % 4; flips > 0; flips--) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    }
    MsgValue v;
    Status s = MsgDecode(bytes, &v);
    if (s.ok()) {
      ok++;
      // Whatever decodes re-encodes to something that decodes to the same value.
      MsgValue again;
      ASSERT_TRUE(MsgDecode(MsgEncode(v), &again).ok()) << Hex(bytes);
      EXPECT_EQ(again, v) << Hex(bytes);
    } else {
      refused++;
      EXPECT_TRUE(s.code() == StatusCode::kProtocol) << s.ToString();
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace millpond
