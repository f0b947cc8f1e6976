#include "common/msgpack.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "common/limits.h"

namespace millpond {

// ---------------------------------------------------------------- MsgValue

MsgValue MsgValue::Bool(bool b) {
  MsgValue v;
  v.type_ = Type::kBool;
  v.bool_ = b;
  return v;
}

MsgValue MsgValue::Int(int64_t i) {
  if (i >= 0) return Uint(static_cast<uint64_t>(i));
  MsgValue v;
  v.type_ = Type::kInt;
  v.int_ = i;
  return v;
}

MsgValue MsgValue::Uint(uint64_t u) {
  MsgValue v;
  v.type_ = Type::kUint;
  v.uint_ = u;
  return v;
}

MsgValue MsgValue::Float(double f) {
  MsgValue v;
  v.type_ = Type::kFloat;
  v.float_ = f;
  return v;
}

MsgValue MsgValue::Str(std::string s) {
  MsgValue v;
  v.type_ = Type::kStr;
  v.str_ = std::move(s);
  return v;
}

MsgValue MsgValue::Bin(std::string bytes) {
  MsgValue v;
  v.type_ = Type::kBin;
  v.str_ = std::move(bytes);
  return v;
}

MsgValue MsgValue::Array(std::vector<MsgValue> items) {
  MsgValue v;
  v.type_ = Type::kArray;
  v.items_ = std::move(items);
  return v;
}

MsgValue MsgValue::Map(std::vector<Entry> entries) {
  MsgValue v;
  v.type_ = Type::kMap;
  v.entries_ = std::move(entries);
  return v;
}

bool MsgValue::GetUint64(uint64_t* out) const {
  if (type_ != Type::kUint) return false;
  *out = uint_;
  return true;
}

bool MsgValue::GetInt64(int64_t* out) const {
  if (type_ == Type::kInt) {
    *out = int_;
    return true;
  }
  if (type_ == Type::kUint && uint_ <= static_cast<uint64_t>(INT64_MAX)) {
    *out = static_cast<int64_t>(uint_);
    return true;
  }
  return false;
}

const MsgValue* MsgValue::Find(const std::string& key) const {
  if (type_ != Type::kMap) return nullptr;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->first == key) return &it->second;
  }
  return nullptr;
}

MsgValue& MsgValue::Add(std::string key, MsgValue value) {
  entries_.emplace_back(std::move(key), std::move(value));
  return *this;
}

MsgValue& MsgValue::Push(MsgValue value) {
  items_.push_back(std::move(value));
  return *this;
}

bool MsgValue::operator==(const MsgValue& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::kNil: return true;
    case Type::kBool: return bool_ == o.bool_;
    case Type::kInt: return int_ == o.int_;
    case Type::kUint: return uint_ == o.uint_;
    case Type::kFloat: return float_ == o.float_ || (std::isnan(float_) && std::isnan(o.float_));
    case Type::kStr:
    case Type::kBin: return str_ == o.str_;
    case Type::kArray: return items_ == o.items_;
    case Type::kMap: return entries_ == o.entries_;
  }
  return false;
}

namespace {

void AppendQuoted(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out->append(buf);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

void AppendDebug(const MsgValue& v, std::string* out) {
  switch (v.type()) {
    case MsgValue::Type::kNil: out->append("null"); return;
    case MsgValue::Type::kBool: out->append(v.bool_value() ? "true" : "false"); return;
    case MsgValue::Type::kInt: {
      int64_t i = 0;
      v.GetInt64(&i);
      out->append(std::to_string(i));
      return;
    }
    case MsgValue::Type::kUint: {
      uint64_t u = 0;
      v.GetUint64(&u);
      out->append(std::to_string(u));
      return;
    }
    case MsgValue::Type::kFloat: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.float_value());
      out->append(buf);
      return;
    }
    case MsgValue::Type::kStr: AppendQuoted(v.str(), out); return;
    case MsgValue::Type::kBin: {
      static const char kHex[] = "0123456789abcdef";
      out->append("bin:");
      for (unsigned char c : v.str()) {
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
      }
      return;
    }
    case MsgValue::Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const MsgValue& item : v.array()) {
        if (!first) out->push_back(',');
        first = false;
        AppendDebug(item, out);
      }
      out->push_back(']');
      return;
    }
    case MsgValue::Type::kMap: {
      out->push_back('{');
      bool first = true;
      for (const auto& [key, value] : v.map()) {
        if (!first) out->push_back(',');
        first = false;
        AppendQuoted(key, out);
        out->push_back(':');
        AppendDebug(value, out);
      }
      out->push_back('}');
      return;
    }
  }
}

}  // namespace

std::string MsgValue::DebugString() const {
  std::string out;
  AppendDebug(*this, &out);
  return out;
}

// ---------------------------------------------------------------- encoding

namespace {

void PutByte(uint8_t b, std::string* out) { out->push_back(static_cast<char>(b)); }

void PutBig(uint64_t v, int bytes, std::string* out) {
  for (int i = bytes - 1; i >= 0; i--) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutUint(uint64_t u, std::string* out) {
  if (u < 0x80) {
    PutByte(static_cast<uint8_t>(u), out);
  } else if (u <= 0xff) {
    PutByte(0xcc, out);
    PutBig(u, 1, out);
  } else if (u <= 0xffff) {
    PutByte(0xcd, out);
    PutBig(u, 2, out);
  } else if (u <= 0xffffffffu) {
    PutByte(0xce, out);
    PutBig(u, 4, out);
  } else if (u <= static_cast<uint64_t>(INT64_MAX)) {
    PutByte(0xd3, out);  // as msgpackr writes a bigint that fits int64
    PutBig(u, 8, out);
  } else {
    PutByte(0xcf, out);
    PutBig(u, 8, out);
  }
}

void PutNegative(int64_t i, std::string* out) {
  uint64_t bits = static_cast<uint64_t>(i);
  if (i >= -32) {
    PutByte(static_cast<uint8_t>(bits & 0xff), out);
  } else if (i >= INT8_MIN) {
    PutByte(0xd0, out);
    PutBig(bits, 1, out);
  } else if (i >= INT16_MIN) {
    PutByte(0xd1, out);
    PutBig(bits, 2, out);
  } else if (i >= INT32_MIN) {
    PutByte(0xd2, out);
    PutBig(bits, 4, out);
  } else {
    PutByte(0xd3, out);
    PutBig(bits, 8, out);
  }
}

// A length header: the fix form when `fixBase` is given and n < fixLimit, then 8 (if
// `code8`), 16 and 32 bits.
void PutHeader(size_t n, int fixBase, size_t fixLimit, int code8, int code16, int code32,
               std::string* out) {
  if (fixBase >= 0 && n < fixLimit) {
    PutByte(static_cast<uint8_t>(fixBase | n), out);
  } else if (code8 >= 0 && n <= 0xff) {
    PutByte(static_cast<uint8_t>(code8), out);
    PutBig(n, 1, out);
  } else if (n <= 0xffff) {
    PutByte(static_cast<uint8_t>(code16), out);
    PutBig(n, 2, out);
  } else {
    PutByte(static_cast<uint8_t>(code32), out);
    PutBig(n, 4, out);
  }
}

void PutStr(const std::string& s, std::string* out) {
  PutHeader(s.size(), 0xa0, 32, 0xd9, 0xda, 0xdb, out);
  out->append(s);
}

}  // namespace

void MsgEncode(const MsgValue& v, std::string* out) {
  switch (v.type()) {
    case MsgValue::Type::kNil: PutByte(0xc0, out); return;
    case MsgValue::Type::kBool: PutByte(v.bool_value() ? 0xc3 : 0xc2, out); return;
    case MsgValue::Type::kInt: {
      int64_t i = 0;
      v.GetInt64(&i);
      PutNegative(i, out);
      return;
    }
    case MsgValue::Type::kUint: {
      uint64_t u = 0;
      v.GetUint64(&u);
      PutUint(u, out);
      return;
    }
    case MsgValue::Type::kFloat: {
      double f = v.float_value();
      uint64_t bits;
      std::memcpy(&bits, &f, sizeof bits);
      PutByte(0xcb, out);
      PutBig(bits, 8, out);
      return;
    }
    case MsgValue::Type::kStr: PutStr(v.str(), out); return;
    case MsgValue::Type::kBin:
      PutHeader(v.str().size(), -1, 0, 0xc4, 0xc5, 0xc6, out);
      out->append(v.str());
      return;
    case MsgValue::Type::kArray:
      PutHeader(v.array().size(), 0x90, 16, -1, 0xdc, 0xdd, out);
      for (const MsgValue& item : v.array()) MsgEncode(item, out);
      return;
    case MsgValue::Type::kMap:
      PutHeader(v.map().size(), 0x80, 16, -1, 0xde, 0xdf, out);
      for (const auto& [key, value] : v.map()) {
        PutStr(key, out);
        MsgEncode(value, out);
      }
      return;
  }
}

std::string MsgEncode(const MsgValue& value) {
  std::string out;
  MsgEncode(value, &out);
  return out;
}

// ---------------------------------------------------------------- decoding

namespace {

class Decoder {
 public:
  Decoder(const uint8_t* data, size_t size) : p_(data), size_(size) {}

  Status Value(uint32_t depth, MsgValue* out);
  size_t at() const { return at_; }

 private:
  Status Fail(const std::string& what) const {
    return Status::Protocol("msgpack: " + what + " at byte " + std::to_string(at_));
  }
  Status Need(size_t n) const {
    if (size_ - at_ < n) return Fail("truncated value (need " + std::to_string(n) + " more bytes)");
    return Status::OK();
  }
  uint64_t Big(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v = (v << 8) | p_[at_++];
    return v;
  }
  Status Length(int bytes, size_t* n) {
    MP_RETURN_IF_ERROR(Need(bytes));
    *n = static_cast<size_t>(Big(bytes));
    return Status::OK();
  }
  Status Bytes(size_t n, std::string* out) {
    MP_RETURN_IF_ERROR(Need(n));
    out->assign(reinterpret_cast<const char*>(p_ + at_), n);
    at_ += n;
    return Status::OK();
  }
  Status Count(size_t n) {
    // Every value takes at least one byte: a count beyond the bytes left is a lie, caught
    // before anything is reserved for it.
    if (n > size_ - at_) return Fail("length " + std::to_string(n) + " exceeds the message");
    elements_ += n;
    if (elements_ > limits::kMsgElementsMax) {
      return Fail("more than " + std::to_string(limits::kMsgElementsMax) + " values");
    }
    return Status::OK();
  }
  Status Array(size_t n, uint32_t depth, MsgValue* out);
  Status Map(size_t n, uint32_t depth, MsgValue* out);

  const uint8_t* p_;
  size_t size_;
  size_t at_ = 0;
  size_t elements_ = 0;
};

Status Decoder::Array(size_t n, uint32_t depth, MsgValue* out) {
  MP_RETURN_IF_ERROR(Count(n));
  std::vector<MsgValue> items(n);
  for (size_t i = 0; i < n; i++) MP_RETURN_IF_ERROR(Value(depth + 1, &items[i]));
  *out = MsgValue::Array(std::move(items));
  return Status::OK();
}

Status Decoder::Map(size_t n, uint32_t depth, MsgValue* out) {
  MP_RETURN_IF_ERROR(Count(n));
  std::vector<MsgValue::Entry> entries(n);
  for (size_t i = 0; i < n; i++) {
    MsgValue key;
    size_t keyAt = at_;
    MP_RETURN_IF_ERROR(Value(depth + 1, &key));
    if (!key.is_str()) {
      at_ = keyAt;
      return Fail("map key is not a string");
    }
    entries[i].first = key.str();
    MP_RETURN_IF_ERROR(Value(depth + 1, &entries[i].second));
  }
  *out = MsgValue::Map(std::move(entries));
  return Status::OK();
}

Status Decoder::Value(uint32_t depth, MsgValue* out) {
  if (depth >= limits::kMsgDepthMax) {
    return Fail("nesting deeper than " + std::to_string(limits::kMsgDepthMax));
  }
  MP_RETURN_IF_ERROR(Need(1));
  const uint8_t tag = p_[at_++];
  size_t n = 0;
  if (tag <= 0x7f) {
    *out = MsgValue::Uint(tag);
    return Status::OK();
  }
  if (tag >= 0xe0) {
    *out = MsgValue::Int(static_cast<int8_t>(tag));
    return Status::OK();
  }
  if ((tag & 0xf0) == 0x80) return Map(tag & 0x0f, depth, out);
  if ((tag & 0xf0) == 0x90) return Array(tag & 0x0f, depth, out);
  if ((tag & 0xe0) == 0xa0) {
    std::string s;
    MP_RETURN_IF_ERROR(Bytes(tag & 0x1f, &s));
    *out = MsgValue::Str(std::move(s));
    return Status::OK();
  }
  switch (tag) {
    case 0xc0: *out = MsgValue::Nil(); return Status::OK();
    case 0xc2: *out = MsgValue::Bool(false); return Status::OK();
    case 0xc3: *out = MsgValue::Bool(true); return Status::OK();
    case 0xc4:
    case 0xc5:
    case 0xc6: {
      MP_RETURN_IF_ERROR(Length(tag == 0xc4 ? 1 : tag == 0xc5 ? 2 : 4, &n));
      std::string s;
      MP_RETURN_IF_ERROR(Bytes(n, &s));
      *out = MsgValue::Bin(std::move(s));
      return Status::OK();
    }
    case 0xca: {
      MP_RETURN_IF_ERROR(Need(4));
      uint32_t bits = static_cast<uint32_t>(Big(4));
      float f;
      std::memcpy(&f, &bits, sizeof f);
      *out = MsgValue::Float(f);
      return Status::OK();
    }
    case 0xcb: {
      MP_RETURN_IF_ERROR(Need(8));
      uint64_t bits = Big(8);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      *out = MsgValue::Float(d);
      return Status::OK();
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
      int bytes = 1 << (tag - 0xcc);
      MP_RETURN_IF_ERROR(Need(bytes));
      *out = MsgValue::Uint(Big(bytes));
      return Status::OK();
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      int bytes = 1 << (tag - 0xd0);
      MP_RETURN_IF_ERROR(Need(bytes));
      uint64_t raw = Big(bytes);
      int shift = 64 - 8 * bytes;  // sign-extend
      int64_t v = shift == 0 ? static_cast<int64_t>(raw)
                             : static_cast<int64_t>(raw << shift) >> shift;
      *out = MsgValue::Int(v);
      return Status::OK();
    }
    case 0xd9:
    case 0xda:
    case 0xdb: {
      MP_RETURN_IF_ERROR(Length(tag == 0xd9 ? 1 : tag == 0xda ? 2 : 4, &n));
      std::string s;
      MP_RETURN_IF_ERROR(Bytes(n, &s));
      *out = MsgValue::Str(std::move(s));
      return Status::OK();
    }
    case 0xdc:
    case 0xdd:
      MP_RETURN_IF_ERROR(Length(tag == 0xdc ? 2 : 4, &n));
      return Array(n, depth, out);
    case 0xde:
    case 0xdf:
      MP_RETURN_IF_ERROR(Length(tag == 0xde ? 2 : 4, &n));
      return Map(n, depth, out);
    default: {
      at_--;
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02x", tag);
      return Fail(std::string("unsupported type ") + buf);
    }
  }
}

}  // namespace

Status MsgDecode(const char* data, size_t size, MsgValue* out) {
  if (size > limits::kMsgBytesMax) {
    return Status::TooLarge("msgpack: message of " + std::to_string(size) + " bytes exceeds " +
                            std::to_string(limits::kMsgBytesMax));
  }
  if (size == 0) return Status::Protocol("msgpack: empty message");
  Decoder d(reinterpret_cast<const uint8_t*>(data), size);
  MsgValue v;
  MP_RETURN_IF_ERROR(d.Value(0, &v));
  if (d.at() != size) {
    return Status::Protocol("msgpack: " + std::to_string(size - d.at()) +
                            " trailing bytes after one value");
  }
  *out = std::move(v);
  return Status::OK();
}

}  // namespace millpond
