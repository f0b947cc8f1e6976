#include "client/reply_fields.h"

namespace millpond {

Status ReplyFields::U64(const MsgValue& m, const char* field, uint64_t* out) const {
  const MsgValue* v = m.Find(field);
  if (v == nullptr || !v->GetUint64(out)) return Bad(std::string(field) + " must be an unsigned integer");
  return Status::OK();
}

Status ReplyFields::U32(const MsgValue& m, const char* field, uint32_t* out) const {
  uint64_t u = 0;
  MP_RETURN_IF_ERROR(U64(m, field, &u));
  if (u > UINT32_MAX) return Bad(std::string(field) + " exceeds 32 bits");
  *out = static_cast<uint32_t>(u);
  return Status::OK();
}

Status ReplyFields::I64(const MsgValue& m, const char* field, int64_t* out) const {
  const MsgValue* v = m.Find(field);
  if (v == nullptr || !v->GetInt64(out)) return Bad(std::string(field) + " must be an integer");
  return Status::OK();
}

Status ReplyFields::List(const MsgValue& m, const char* field, size_t max, const std::vector<MsgValue>** out) const {
  const MsgValue* v = m.Find(field);
  if (v == nullptr || !v->is_array()) return Bad(std::string(field) + " must be an array");
  if (v->array().size() > max) return Bad(std::string(field) + " has more than " + std::to_string(max) + " items");
  *out = &v->array();
  return Status::OK();
}

Status ReplyFields::U32List(const MsgValue& m, const char* field, size_t max, std::vector<uint32_t>* out) const {
  const std::vector<MsgValue>* items = nullptr;
  MP_RETURN_IF_ERROR(List(m, field, max, &items));
  out->clear();
  out->reserve(items->size());
  for (const MsgValue& item : *items) {
    uint64_t u = 0;
    if (!item.GetUint64(&u) || u > UINT32_MAX) return Bad(std::string(field) + " must hold 32-bit ids");
    out->push_back(static_cast<uint32_t>(u));
  }
  return Status::OK();
}

}  // namespace millpond
