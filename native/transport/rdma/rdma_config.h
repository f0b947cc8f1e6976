// Whether the RDMA transport is compiled in. The core must build without libibverbs-dev:
// when <infiniband/verbs.h> is missing (or MILLPOND_NO_VERBS is defined, to test that path)
// only rdma_unavailable.cc is compiled, and RdmaProbe() says why. The headers are the only
// build-time need: libibverbs itself is loaded with dlopen at run time (ibv_api.h).
#pragma once

#if !defined(MILLPOND_NO_VERBS) && defined(__has_include)
#if __has_include(<infiniband/verbs.h>)
#define MILLPOND_HAVE_VERBS 1
#endif
#endif
#ifndef MILLPOND_HAVE_VERBS
#define MILLPOND_HAVE_VERBS 0
#endif
