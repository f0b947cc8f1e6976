// Must not compile: client/ is below storage/ (CMakeLists.txt, the layers). ctest's
// layering_* tests build this and expect the include to be missing.
#include "storage/chunk_store.h"
