/* poll(2) event bits for the Python side (waits themselves are nr_rx_wait2 in rx.c). */
#ifndef NETRING_WAIT_H
#define NETRING_WAIT_H
#include <poll.h>
#include "common.h"
#endif
