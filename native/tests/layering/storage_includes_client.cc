// Compiles: storage/ is above client/ (chain writes forward with ChunkClient). The control
// for the layering_* tests: the same build command succeeds when the include is allowed.
#include "client/chunk_client.h"
#include "storage/chunk_store.h"
