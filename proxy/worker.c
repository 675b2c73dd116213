/* proxy/worker.c — binds a worker to its poller (proxy/worker.h). The
 * worker's lists and counters are written by the data path itself. */
#include "worker.h"

void worker_init(struct worker *w, struct poller *p, timer_cb starve_retry)
{
    w->poller = p;
    w->id = (unsigned)poller_id(p);
    /* A zeroed timer would read as armed (heap slot 0): initialise it now. */
    timer_init(&w->starve_retry, starve_retry, w);
    poller_set_user(p, w);
}
