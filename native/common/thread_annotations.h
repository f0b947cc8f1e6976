// Clang thread-safety annotations (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html): a
// member marked GUARDED_BY(mu_) may be touched only with mu_ held, a function marked
// REQUIRES(mu_) only called with it held. Checked by clang with -Wthread-safety (the CMake
// option MILLPOND_THREAD_SAFETY, scripts/check-thread-safety.sh); other compilers ignore them.
// The annotated mutex types are in common/mutex.h (std::mutex carries no annotation in
// libstdc++).
#pragma once

#if defined(__clang__)
#define MP_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define MP_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) MP_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY MP_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) MP_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) MP_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) MP_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) MP_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) MP_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) MP_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) MP_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) MP_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) MP_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) MP_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) MP_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) MP_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) MP_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) MP_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) MP_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS MP_THREAD_ANNOTATION(no_thread_safety_analysis)
