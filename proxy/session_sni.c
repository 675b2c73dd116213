/* proxy/session_sni.c — the inspector of a listener with "routes" (README
 * "SNI and ALPN routing"): waits for the whole TLS ClientHello, picks the
 * route its server name and ALPN take, and sets the session's pool. It
 * consumes nothing: the hello goes to the backend as the client sent it.
 * The hello's bytes are tls_hello.c's, the choice is route.c's. */
#include "inspect.h"
#include "listener.h"
#include "pool.h"
#include "route.h"
#include "tls_hello.h"

enum inspect_verdict session_sni_inspect(struct session *s, const uint8_t *buf, size_t len,
                                         size_t *consume)
{
    struct listener *l = s->listener;
    struct tls_hello h;
    enum tls_hello_status st = tls_hello_parse(buf, len, &h);
    if (st == TLS_HELLO_NEED_MORE) {
        /* The client ended its side before the hello was whole: nothing
         * more can come. (The deadline is inspect.c's, counted there.) */
        if (!(s->side[SIDE_CLIENT].flags & SIDE_EOF))
            return INSPECT_NEED_MORE;
        st = TLS_HELLO_BAD;
    }
    if (st != TLS_HELLO_OK) {
        atomic_fetch_add_explicit(&l->bad_hello, 1, memory_order_relaxed);
        return INSPECT_FAIL;
    }
    int i = route_match(l->routes, l->nroutes, &h);
    if (i < 0) {
        atomic_fetch_add_explicit(&l->no_route, 1, memory_order_relaxed);
        return INSPECT_FAIL;
    }
    atomic_fetch_add_explicit(&l->route_to[i].sessions, 1, memory_order_relaxed);
    /* The session counts on the pool it holds (a reload frees a retired
     * pool only when none does): on the route's first, then off the
     * listener's. */
    struct pool *to = atomic_load_explicit(&l->route_to[i].pool, memory_order_acquire);
    if (to != s->pool) {
        pool_session_begin(to);
        pool_session_end(s->pool);
        s->pool = to;
    }
    (void)consume; /* the ClientHello is replayed to the backend, whole */
    return INSPECT_DONE;
}
