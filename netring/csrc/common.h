/* Shared helpers for the netring C core. Included by every component header. */
#ifndef NETRING_COMMON_H
#define NETRING_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <errno.h>

/* Shared-memory words (ring status, producer/consumer indices) are only ever touched with
 * these: an acquire load orders the reads of the data the word guards after it, a release
 * store orders our writes to that data before the hand-back. */
#define NR_LOAD_ACQ(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define NR_STORE_REL(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

#endif
