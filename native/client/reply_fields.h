// Typed reads of the fields of a decoded reply record (a msgpack map), shared by the service
// clients. A missing or ill-typed field is kProtocol naming the service and the field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/msgpack.h"
#include "common/status.h"

namespace millpond {

class ReplyFields {
 public:
  explicit ReplyFields(const char* service) : service_(service) {}

  Status Bad(const std::string& what) const { return Status::Protocol(std::string(service_) + " reply: " + what); }
  Status U64(const MsgValue& m, const char* field, uint64_t* out) const;
  Status U32(const MsgValue& m, const char* field, uint32_t* out) const;
  Status I64(const MsgValue& m, const char* field, int64_t* out) const;
  // An array of at most `max` items.
  Status List(const MsgValue& m, const char* field, size_t max, const std::vector<MsgValue>** out) const;
  // An array of at most `max` 32-bit unsigned integers.
  Status U32List(const MsgValue& m, const char* field, size_t max, std::vector<uint32_t>* out) const;

 private:
  const char* service_;
};

}  // namespace millpond
