// How the native client presents its identity on the control plane (design §10, the same as
// src/auth/credentials.ts): a token `mpt1.<uid>.<tokenId>.<secret>` and the cluster's CURVE
// server public key (cluster.json "serverKey"). The client connects with the CURVE key pair
// derived from the token secret (secret key = HMAC-SHA256(tokenSecret,
// "millpond/v1/curve/client")) and sends the token in every meta request's params.
#pragma once

#include <string>

#include "client/rpc_client.h"
#include "common/status.h"

namespace millpond {

// Fills rpc->curve* from `token` and `serverKey`. kAuth for a token that is not one (the
// message never echoes the secret) or a server key that is not 40 Z85 characters;
// kNotSupported without libzmq.
Status ApplyTokenCurve(const std::string& token, const std::string& serverKey, RpcClientOptions* rpc);

// The CURVE client secret key (32 bytes) of a token; exposed for tests against the vectors.
Status TokenCurveSecret(const std::string& token, std::string* secret32);

}  // namespace millpond
