#include <poll.h>
#include "wait.h"

int nr_wait_fd(int fd, int events, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = (short)events, .revents = 0 };
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0)
        return -errno;
    if (rc == 0)
        return 0;
    return p.revents;
}
