// The RDMA transport is always compiled in. <infiniband/verbs.h> (Debian: libibverbs-dev) is
// needed to build, never to run: libibverbs itself is loaded with dlopen at run time
// (ibv_api.h), so an addon built here runs on hosts without it and then uses TCP.
#pragma once

#if !__has_include(<infiniband/verbs.h>)
#error "millpond needs <infiniband/verbs.h> to build: apt-get install libibverbs-dev (the library is only dlopened at run time)"
#endif
