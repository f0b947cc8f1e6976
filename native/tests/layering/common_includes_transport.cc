// Must not compile: common/ is below transport/ (CMakeLists.txt, the layers).
#include "transport/transport.h"
