// A small msgpack codec for the control plane (design §1, src/protocol/codec.ts). Plain msgpack
// only: nil, bool, integers, float64, str, bin, arrays, and maps whose keys are strings, kept
// in order. No extension types.
//
// Encoding is byte-identical to the TS codec (msgpackr with variableMapSize, no records):
//  - a non-negative integer: fixint (< 0x80), uint8, uint16, uint32, then int64 (0xd3) up to
//    2^63-1 and uint64 (0xcf) above; a negative one: fixint (>= -32), int8, int16, int32, int64;
//  - float64 always (0xcb); str as fixstr/str8/str16/str32; bin8/16/32; fixarray/array16/32;
//    fixmap/map16/map32, in the order the entries were added.
// Decoding accepts every integer and float width, and is bounded: limits::kMsgBytesMax input,
// kMsgDepthMax nesting, kMsgElementsMax values. Malformed input yields kProtocol, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace millpond {

class MsgValue {
 public:
  enum class Type { kNil, kBool, kInt, kUint, kFloat, kStr, kBin, kArray, kMap };
  using Entry = std::pair<std::string, MsgValue>;

  MsgValue() = default;  // nil
  static MsgValue Nil() { return MsgValue(); }
  static MsgValue Bool(bool b);
  // Integers are normalised: a non-negative value is always kUint, a negative one kInt, so
  // equal numbers compare equal whatever their width on the wire.
  static MsgValue Int(int64_t v);
  static MsgValue Uint(uint64_t v);
  static MsgValue Float(double v);
  static MsgValue Str(std::string s);
  static MsgValue Bin(std::string bytes);
  static MsgValue Array(std::vector<MsgValue> items = {});
  static MsgValue Map(std::vector<Entry> entries = {});

  Type type() const { return type_; }
  bool is_nil() const { return type_ == Type::kNil; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt || type_ == Type::kUint; }
  bool is_str() const { return type_ == Type::kStr; }
  bool is_bin() const { return type_ == Type::kBin; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_map() const { return type_ == Type::kMap; }

  // REQUIRES: the matching type.
  bool bool_value() const { return bool_; }
  double float_value() const { return float_; }
  const std::string& str() const { return str_; }  // kStr and kBin
  const std::vector<MsgValue>& array() const { return items_; }
  std::vector<MsgValue>& array() { return items_; }
  const std::vector<Entry>& map() const { return entries_; }

  // The integer, when this is one that fits; false otherwise (also for floats).
  bool GetUint64(uint64_t* out) const;
  bool GetInt64(int64_t* out) const;

  // Maps: the value of `key` (the last one if repeated, as msgpackr does), or nullptr.
  const MsgValue* Find(const std::string& key) const;
  // Maps: appends an entry. Returns *this for chaining. REQUIRES: is_map().
  MsgValue& Add(std::string key, MsgValue value);
  // Arrays: appends an item. REQUIRES: is_array().
  MsgValue& Push(MsgValue value);

  bool operator==(const MsgValue& other) const;
  bool operator!=(const MsgValue& other) const { return !(*this == other); }

  // A JSON-like rendering for test failures and error messages (bin as hex).
  std::string DebugString() const;

 private:
  Type type_ = Type::kNil;
  bool bool_ = false;
  int64_t int_ = 0;
  uint64_t uint_ = 0;
  double float_ = 0;
  std::string str_;
  std::vector<MsgValue> items_;
  std::vector<Entry> entries_;
};

// Appends the encoding of `value` to *out. REQUIRES: nesting below limits::kMsgDepthMax.
void MsgEncode(const MsgValue& value, std::string* out);
std::string MsgEncode(const MsgValue& value);

// Decodes exactly one value from data[0, size) (trailing bytes are an error).
// kTooLarge above limits::kMsgBytesMax; kProtocol, naming the offset, for anything malformed.
Status MsgDecode(const char* data, size_t size, MsgValue* out);
inline Status MsgDecode(const std::string& bytes, MsgValue* out) {
  return MsgDecode(bytes.data(), bytes.size(), out);
}

}  // namespace millpond
