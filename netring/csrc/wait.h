/* EINTR-aware waiting on one fd. */
#ifndef NETRING_WAIT_H
#define NETRING_WAIT_H
#include <poll.h>
#include "common.h"

/* poll() one fd for `events` up to timeout_ms (-1: forever).
 * Returns revents (>0), 0 on timeout, or -errno. -EINTR is returned as is, so the Python
 * caller can run signal handlers (Ctrl-C) and retry with the remaining time. */
int nr_wait_fd(int fd, int events, int timeout_ms);

#endif
