// Must not compile: transport/ is below client/ (CMakeLists.txt, the layers).
#include "client/chunk_client.h"
