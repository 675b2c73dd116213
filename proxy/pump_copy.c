/* proxy/pump_copy.c — the copy transport: bytes wait in the source side's
 * linkbuf between one recvmsg and one sendmsg (reactor/linkbuf.c). Owns the
 * read span (blocks booked per read) and what a linkbuf's watermarks and
 * buffer memory mean; the pump (proxy/pump.h) owns the rest. Every session
 * uses it while connecting, and a session of another transport whenever its
 * linkbuf holds bytes or that transport cannot carry a direction. */
#define _GNU_SOURCE
#include "pump.h"

#define SPAN_MAX_BLOCKS 16

static size_t copy_held(const struct session *s, int d)
{
    return linkbuf_len(&s->side[d].in);
}

static ssize_t copy_snd(struct session *s, int d)
{
    return linkbuf_send_to(&s->side[d].in, s->side[!d].op.fd);
}

/* Bytes to offer one read: the span, but never booking far past the high
 * watermark. */
static size_t read_want(const struct side *src)
{
    size_t want = (size_t)src->span * LINKBUF_BLOCK_DATA;
    size_t len = linkbuf_len(&src->in), high = src->in.high;
    size_t room = len < high ? high - len : 0;
    if (want > room)
        want = room > LINKBUF_BLOCK_DATA ? room : LINKBUF_BLOCK_DATA;
    return want;
}

static ssize_t copy_rcv(struct session *s, int d, int *empty)
{
    struct side *src = &s->side[d];
    /* Others wait for buffer memory: one that already holds some queues
     * behind them instead of taking every freed block. */
    if (s->w->starved && linkbuf_len(&src->in))
        return -ENOMEM;
    size_t want = read_want(src), booked = 0;
    ssize_t n = linkbuf_recv_from(&src->in, src->op.fd, want, &booked);
    if (n == -EAGAIN)
        *empty = 1;
    if (n <= 0)
        return n;
    /* The span grows on full reads and shrinks on short ones; a read that
     * filled less than it was offered emptied the socket. */
    if ((size_t)n == booked) {
        if ((size_t)n >= want && src->span < SPAN_MAX_BLOCKS)
            src->span *= 2;
    } else {
        *empty = 1;
        if ((size_t)n < want / 2 && src->span > 1)
            src->span /= 2;
    }
    return n;
}

static int copy_above_high(const struct session *s, int d)
{
    return linkbuf_above_high(&s->side[d].in);
}

static int copy_below_low(const struct session *s, int d)
{
    return linkbuf_below_low(&s->side[d].in);
}

static const struct pump_movers copy_movers = {
    .held = copy_held,
    .snd = copy_snd,
    .rcv = copy_rcv,
    .above_high = copy_above_high,
    .below_low = copy_below_low,
    .starves = 1, /* linkbuf blocks come from the poller's capped cache */
};

int pump_copy_dir(struct session *s, int d, int *bad)
{
    return pump_dir(s, d, &copy_movers, bad);
}

const struct pump_xprt pump_copy = {.name = "copy", .dir = pump_copy_dir};
