/* reactor/poll_uring.c — the io_uring backend of reactor/poll.h: readiness
 * from IORING_OP_POLL_ADD requests. add/del only queue SQEs; the wait
 * submits them and waits in one io_uring_enter. Owns the ring, the wake-up
 * eventfd and one small record per registration (struct ureg), the user_data
 * of its poll request.
 *
 * Kernel facts this relies on (io_uring/poll.c):
 * - Without IORING_POLL_ADD_LEVEL a poll request is armed with EPOLLET: it
 *   reports readiness present when it is armed, then a CQE per wake-up that
 *   matches its mask, as epoll's EPOLLET does. Edge registrations are one
 *   multishot request each, for their whole life.
 * - IORING_POLL_ADD_LEVEL is not epoll's level mode: it only stops the
 *   report at arm time. Level registrations (listeners) are therefore
 *   one-shot requests re-armed at the next wait: the arm polls the file and
 *   completes at once while it is still ready, so readiness left over (a
 *   backlog not fully accepted) is reported again on each wait, as epoll's
 *   level mode does.
 * - A multishot request ends (a CQE without IORING_CQE_F_MORE) on overflow
 *   or an error: it is re-armed at the next wait.
 * - A poll request holds a file reference: close(fd) does not end it, the
 *   socket stays open until it is removed (poll_backend_forget).
 * - Every poll add ends with exactly one CQE without IORING_CQE_F_MORE; the
 *   record is freed only after it, so a late CQE never reaches freed memory.
 *   del clears the record's ptr: its later CQEs are dropped. */
#define _GNU_SOURCE
#include "poll.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#define URING_SQ_ENTRIES 1024
#define URING_CQ_ENTRIES 8192 /* multishot CQEs of a busy loop: avoid overflow */
#define URING_MAX_ERRORS 3    /* failed arms in a row before reporting a hang-up */

/* user_data of requests that are not a registration's poll. Records are
 * malloc'd, so never at these addresses. */
#define UD_WAKE   1u /* the eventfd's poll */
#define UD_IGNORE 2u /* removes: their result is not needed */

/* Work a record needs at the next wait (an SQE could not be had at once). */
enum {
    TODO_ARM = 1u << 0,
    TODO_REMOVE = 1u << 1,
};

struct ureg {
    void *ptr; /* the caller's; NULL once deleted */
    int fd;
    uint32_t interest; /* POLL_* */
    uint8_t armed;     /* a poll request is in the kernel: its last CQE is to come */
    uint8_t todo;      /* TODO_* bits; on the todo list when non-zero */
    uint8_t errors;    /* failed arms in a row */
    unsigned pass;     /* the wait pass that last reported it ... */
    int slot;          /* ... at this index of that pass's events */
    struct ureg *todo_next;
    struct ureg *prev, *next; /* every record, for close */
};

struct poll_uring {
    struct poll_backend head; /* kind: POLL_KIND_URING */
    struct io_uring ring;
    int wakefd;
    int wake_armed;
    int wake_read; /* the eventfd was read in this wait's pass */
    unsigned pass; /* counts waits: a record reported twice in one is merged */
    int enabled;   /* the owner thread has waited once: the ring is enabled for it */
    unsigned setup_flags;
    struct ureg **by_fd; /* live registrations by fd */
    int nfd;
    struct ureg *all;
    struct ureg *todo_head, *todo_tail;
};

static struct poll_uring *U(struct poll_backend *pb)
{
    return (struct poll_uring *)pb;
}

/* Tries the cheapest setup first: one issuer (the poller's thread) with its
 * completion work deferred to its own waits; older kernels refuse those flags. */
static int ring_init(struct poll_uring *u)
{
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int err = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params prm;
        memset(&prm, 0, sizeof(prm));
        prm.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        prm.cq_entries = URING_CQ_ENTRIES;
        err = io_uring_queue_init_params(URING_SQ_ENTRIES, &u->ring, &prm);
        if (err == -EINVAL)
            continue;
        if (err)
            return err;
        /* EXT_ARG (5.11) for the timed wait; RSRC_TAGS came with multishot
         * poll (5.13); NODROP: overflowed CQEs are kept, not lost. */
        unsigned need = IORING_FEAT_EXT_ARG | IORING_FEAT_RSRC_TAGS | IORING_FEAT_NODROP;
        if ((prm.features & need) != need) {
            io_uring_queue_exit(&u->ring);
            return -EOPNOTSUPP;
        }
        u->setup_flags = prm.flags;
        return 0;
    }
    return err;
}

int poll_uring_open(struct poll_backend **out)
{
    struct poll_uring *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->head.kind = POLL_KIND_URING;
    int err = ring_init(u);
    if (err)
        goto fail_free;
    u->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->wakefd < 0) {
        err = -errno;
        goto fail_ring;
    }
    *out = &u->head;
    return 0;
fail_ring:
    io_uring_queue_exit(&u->ring);
fail_free:
    free(u);
    return err;
}

void poll_uring_close(struct poll_backend *pb)
{
    struct poll_uring *u = U(pb);
    /* Closing the ring ends every request in the kernel; no CQE is read
     * after this, so every record goes now, live or waiting for its last. */
    io_uring_queue_exit(&u->ring);
    for (struct ureg *r = u->all, *next; r; r = next) {
        next = r->next;
        free(r);
    }
    close(u->wakefd);
    free(u->by_fd);
    free(u);
}

/* An SQE, submitting what is queued when the SQ is full — only on the owner
 * thread once the loop runs (before, the ring may still be disabled). NULL:
 * none now; the caller leaves the work on the todo list. */
static struct io_uring_sqe *sqe_get(struct poll_uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe && u->enabled && io_uring_submit(&u->ring) >= 0)
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

static void todo_push(struct poll_uring *u, struct ureg *r, uint8_t what)
{
    if (!r->todo) {
        r->todo_next = NULL;
        if (u->todo_tail)
            u->todo_tail->todo_next = r;
        else
            u->todo_head = r;
        u->todo_tail = r;
    }
    r->todo |= what;
}

static unsigned interest_to_mask(uint32_t interest)
{
    /* Exclusive (accept "shared"): added to the socket's wait queue as an
     * exclusive waiter, so a connection completes one ring's request, not
     * every ring's; like epoll, it takes no RDHUP. Listeners are level
     * registrations, one-shot here: re-armed at the next wait. */
    unsigned m = interest & POLL_EXCLUSIVE ? EPOLLEXCLUSIVE : POLLRDHUP;
    if (interest & POLL_READ)
        m |= POLLIN;
    if (interest & POLL_WRITE)
        m |= POLLOUT;
    return m;
}

static void arm(struct poll_uring *u, struct ureg *r)
{
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe) {
        todo_push(u, r, TODO_ARM);
        return;
    }
    unsigned mask = interest_to_mask(r->interest);
    if (r->interest & POLL_EDGE)
        io_uring_prep_poll_multishot(sqe, r->fd, mask);
    else
        io_uring_prep_poll_add(sqe, r->fd, mask); /* one-shot: see the top */
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r);
    r->armed = 1;
}

static void cancel(struct poll_uring *u, struct ureg *r)
{
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe) {
        todo_push(u, r, TODO_REMOVE);
        return;
    }
    io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)r);
    io_uring_sqe_set_data64(sqe, UD_IGNORE);
}

static void reg_free(struct poll_uring *u, struct ureg *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        u->all = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
}

static int grow_by_fd(struct poll_uring *u, int fd)
{
    int n = u->nfd ? u->nfd : 64;
    while (n <= fd)
        n *= 2;
    struct ureg **t = realloc(u->by_fd, (size_t)n * sizeof(*t));
    if (!t)
        return -ENOMEM;
    memset(t + u->nfd, 0, (size_t)(n - u->nfd) * sizeof(*t));
    u->by_fd = t;
    u->nfd = n;
    return 0;
}

int poll_uring_add(struct poll_backend *pb, int fd, uint32_t interest, void *ptr)
{
    struct poll_uring *u = U(pb);
    if (fd < 0)
        return -EBADF;
    if (fd >= u->nfd && grow_by_fd(u, fd))
        return -ENOMEM;
    if (u->by_fd[fd])
        return -EEXIST;
    struct ureg *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->ptr = ptr;
    r->fd = fd;
    r->interest = interest;
    r->next = u->all;
    if (u->all)
        u->all->prev = r;
    u->all = r;
    u->by_fd[fd] = r;
    arm(u, r);
    return 0;
}

/* Detaches fd's record: its request is removed, its late CQEs dropped, and
 * it is freed after its last CQE (or now when no request is in the kernel). */
static void detach(struct poll_uring *u, struct ureg *r)
{
    u->by_fd[r->fd] = NULL;
    r->ptr = NULL;
    if (r->armed)
        cancel(u, r);
    else if (!r->todo)
        reg_free(u, r);
    /* else: the todo pass frees it */
}

int poll_uring_del(struct poll_backend *pb, int fd)
{
    struct poll_uring *u = U(pb);
    struct ureg *r = fd >= 0 && fd < u->nfd ? u->by_fd[fd] : NULL;
    if (!r)
        return -ENOENT;
    detach(u, r);
    return 0;
}

/* The work left for this wait: re-arms (level requests after each CQE,
 * multishot ones that ended) and SQEs that could not be had earlier. */
static void run_todo(struct poll_uring *u)
{
    struct ureg *r = u->todo_head;
    u->todo_head = u->todo_tail = NULL;
    while (r) {
        struct ureg *next = r->todo_next;
        uint8_t what = r->todo;
        r->todo = 0;
        if (!r->ptr) { /* deleted meanwhile */
            if (r->armed)
                cancel(u, r);
            else
                reg_free(u, r);
        } else if (!r->armed && (what & TODO_ARM)) {
            arm(u, r);
        }
        r = next;
    }
}

static void arm_wake(struct poll_uring *u)
{
    struct io_uring_sqe *sqe = sqe_get(u);
    if (!sqe)
        return; /* tried again at the next wait */
    io_uring_prep_poll_multishot(sqe, u->wakefd, POLLIN);
    io_uring_sqe_set_data64(sqe, UD_WAKE);
    u->wake_armed = 1;
}

static uint32_t mask_to_events(unsigned m, uint32_t interest)
{
    uint32_t e = 0;
    if ((m & POLLIN) && (interest & POLL_READ))
        e |= POLL_EV_IN;
    if ((m & POLLOUT) && (interest & POLL_WRITE))
        e |= POLL_EV_OUT;
    if (m & (POLLHUP | POLLERR | POLLNVAL))
        e |= POLL_EV_HUP;
    if (m & POLLRDHUP)
        e |= POLL_EV_RDHUP;
    return e;
}

/* Unlike epoll, which keeps one ready entry per fd, io_uring may post
 * several CQEs for one request between two waits: they become one event, so
 * a callback is not called again for readiness it has already consumed. */
static int report(struct poll_uring *u, struct ureg *r, uint32_t e, struct poll_event *ev,
                  struct poll_event *out)
{
    if (r->pass == u->pass && r->slot < ev - out && out[r->slot].ptr == r->ptr) {
        out[r->slot].events |= e;
        return 0;
    }
    r->pass = u->pass;
    r->slot = (int)(ev - out);
    ev->ptr = r->ptr;
    ev->events = e;
    return 1;
}

/* One CQE: fills *ev (the next free slot of out) and returns 1 when it is a
 * new event for the caller. */
static int on_cqe(struct poll_uring *u, const struct io_uring_cqe *cqe, struct poll_event *ev,
                  struct poll_event *out)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    int more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (ud == UD_IGNORE)
        return 0;
    if (ud == UD_WAKE) {
        if (!more)
            u->wake_armed = 0;
        if (!u->wake_read) {
            uint64_t v;
            /* Back to zero, once per pass; EAGAIN: already zero. */
            while (read(u->wakefd, &v, sizeof(v)) < 0 && errno == EINTR)
                ;
            u->wake_read = 1;
        }
        ev->ptr = NULL;
        ev->events = 0;
        return 1;
    }
    struct ureg *r = (struct ureg *)(uintptr_t)ud;
    if (!more)
        r->armed = 0;
    if (!r->ptr) { /* deleted: drop, and free after the last CQE */
        if (!more && !r->todo)
            reg_free(u, r);
        return 0;
    }
    if (cqe->res < 0) {
        /* The request failed or ended (-ENOMEM...): arm again, a few times; then let the
         * caller's read/write find out what is wrong with the fd. */
        if (++r->errors < URING_MAX_ERRORS) {
            todo_push(u, r, TODO_ARM);
            return 0;
        }
        r->errors = 0;
        return report(u, r, POLL_EV_HUP, ev, out);
    }
    r->errors = 0;
    if (!more)
        todo_push(u, r, TODO_ARM);
    uint32_t e = mask_to_events((unsigned)cqe->res, r->interest);
    if (!e)
        return 0;
    return report(u, r, e, ev, out);
}

/* The first wait runs on the poller's thread: with SINGLE_ISSUER that thread
 * becomes the ring's only submitter, so the ring starts disabled until then. */
static int enable(struct poll_uring *u)
{
    if (u->setup_flags & IORING_SETUP_R_DISABLED) {
        /* Raw: Debian's liburing 2.3 declares io_uring_enable_rings but
         * does not export it. */
        if (syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
                    0) < 0)
            return -errno;
    }
    io_uring_register_ring_fd(&u->ring); /* optional: saves an fd lookup per enter */
    u->enabled = 1;
    return 0;
}

int poll_uring_wait(struct poll_backend *pb, struct poll_event *out, int max, int timeout_ms)
{
    struct poll_uring *u = U(pb);
    int err;
    if (!u->enabled && (err = enable(u)) < 0)
        return err;
    if (!u->wake_armed)
        arm_wake(u);
    if (u->todo_head)
        run_todo(u);
    if (io_uring_cq_ready(&u->ring) || timeout_ms == 0) {
        /* CQEs left from the last wait, or no wait: submit and, for
         * deferred task work, collect what completed. */
        err = io_uring_submit_and_get_events(&u->ring);
    } else if (timeout_ms < 0) {
        err = io_uring_submit_and_wait(&u->ring, 1);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        struct io_uring_cqe *cqe;
        err = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    }
    /* EINTR, ETIME: nothing happened; EBUSY, EAGAIN: CQEs wait in the
     * overflow list, read those in the CQ first. */
    if (err < 0 && err != -EINTR && err != -ETIME && err != -EBUSY && err != -EAGAIN)
        return err;
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int n = 0;
    u->wake_read = 0;
    u->pass++;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        if (n == max)
            break;
        seen++;
        n += on_cqe(u, cqe, &out[n], out);
    }
    io_uring_cq_advance(&u->ring, seen);
    return n;
}

void poll_uring_wake(struct poll_backend *pb)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: a wake-up is pending anyway. */
    while (write(U(pb)->wakefd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}
