// metricsSnapshot(): the process's data-plane metrics (common/metrics.h) as a plain object,
// read at scrape time by src/metrics/native.ts. Counts are numbers (exact below 2^53).
#include "addon/wraps.h"
#include "common/metrics.h"

namespace millpond::addon {

namespace {

Napi::Array Row(Napi::Env env, const uint64_t* values, size_t n) {
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(values[i])));
  return a;
}

}  // namespace

Napi::Value MetricsSnapshotJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  metrics::Snapshot s;
  metrics::TakeSnapshot(&s);
  Napi::Object o = Napi::Object::New(env);
  Napi::Array ops = Napi::Array::New(env, metrics::kOps);
  Napi::Array requests = Napi::Array::New(env, metrics::kOps);
  Napi::Array errors = Napi::Array::New(env, metrics::kOps);
  Napi::Array latency = Napi::Array::New(env, metrics::kOps);
  for (int i = 0; i < metrics::kOps; i++) {
    uint32_t k = static_cast<uint32_t>(i);
    ops.Set(k, Napi::String::New(env, metrics::OpName(static_cast<metrics::Op>(i))));
    requests.Set(k, Row(env, s.requests[i], metrics::kTransports));
    errors.Set(k, Row(env, s.errors[i], metrics::kTransports));
    Napi::Object h = Napi::Object::New(env);
    h.Set("buckets", Row(env, s.latency[i].buckets, limits::kDataLatencyBucketCount + 1));
    h.Set("sumUs", Napi::Number::New(env, static_cast<double>(s.latency[i].sumUs)));
    latency.Set(k, h);
  }
  Napi::Array transports = Napi::Array::New(env, metrics::kTransports);
  for (int t = 0; t < metrics::kTransports; t++)
    transports.Set(static_cast<uint32_t>(t), Napi::String::New(env, metrics::TransportName(static_cast<metrics::Transport>(t))));
  o.Set("ops", ops);
  o.Set("transports", transports);
  o.Set("latencyBucketsUs", Row(env, limits::kDataLatencyBucketsUs, limits::kDataLatencyBucketCount));
  o.Set("requests", requests);
  o.Set("errors", errors);
  o.Set("latency", latency);
  auto num = [&](const char* name, uint64_t v) { o.Set(name, Napi::Number::New(env, static_cast<double>(v))); };
  num("bytesRead", s.bytesRead);
  num("bytesWritten", s.bytesWritten);
  num("inFlight", s.inFlight);
  num("queued", s.queued);
  num("busyRejections", s.busyRejections);
  num("crcFailures", s.crcFailures);
  num("chainForwards", s.chainForwards);
  num("localReadHits", s.localReadHits);
  return o;
}

}  // namespace millpond::addon
