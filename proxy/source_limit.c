/* proxy/source_limit.c — see proxy/source_limit.h. The table is open
 * addressing without locks: a source (a hash of its family, prefix length
 * and masked address, with a random seed per table) lives in one of the
 * SOURCE_WINDOW slots that follow its hash. A slot's key word says who owns
 * it and how far along:
 *   0                 empty;
 *   hash | KEY_LIVE    a source's entry: acquirers pin it (ctr's open + 1);
 *   hash | KEY_EVICTING its source is being forgotten (idle: nothing open,
 *                     bucket full); acquirers of that source wait for the end;
 *   hash | KEY_CLAIMING a new source's entry being filled in.
 * Every step is a CAS or a store on one word, sequentially consistent, so
 * two threads doing steps on the same slot each see the other's, in order.
 * Not on the data path: nothing. Locks: none. Allocation: once, at init. */
#define _GNU_SOURCE
#include "source_limit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "reactor/clock.h"

#define NS_PER_S      1000000000ull
#define ACQUIRE_TRIES 8 /* lost races before a connection goes on untracked */

/* README "Per-source limits" states the bytes per tracked source. */
_Static_assert(sizeof(struct source_entry) == 48, "a tracked source is 48 bytes");

enum { KEY_LIVE = 1, KEY_EVICTING = 2, KEY_CLAIMING = 3, KEY_STATE = 3 };
#define OPEN_MASK 0xffffffffull
#define GEN_ONE   (1ull << 32)

enum { CLAIM_FULL = -1, CLAIM_RACE = -2 };
enum pin_result { PIN_OK, PIN_FULL, PIN_GONE };

struct source_id {
    uint8_t family;
    uint8_t len;
    uint8_t addr[16];
};

int source_limit_init(struct source_limit *t, const struct source_limit_opts *o)
{
    memset(t, 0, sizeof(*t));
    if (o->capacity < SOURCE_WINDOW || (o->capacity & (o->capacity - 1)) || o->prefix_v4 > 32 ||
        o->prefix_v6 > 128 || (o->rate_per_s && !o->burst))
        return -EINVAL;
    t->e = calloc(o->capacity, sizeof(*t->e));
    if (!t->e)
        return -ENOMEM;
    t->mask = o->capacity - 1;
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
        t->seed = clock_mono_ns() ^ (uint64_t)(uintptr_t)t; /* no entropy yet: still not fixed */
    if (o->rate_per_s) {
        t->interval_ns = NS_PER_S / o->rate_per_s;
        t->tolerance_ns = (uint64_t)(o->burst - 1) * t->interval_ns;
    }
    t->opts = *o;
    return 0;
}

void source_limit_fini(struct source_limit *t)
{
    free(t->e);
    t->e = NULL;
}

size_t source_limit_bytes(const struct source_limit *t)
{
    return ((size_t)t->mask + 1) * SOURCE_ENTRY_BYTES;
}

/* Keeps the first len bits of a (n bytes), clears the rest. */
static void keep_prefix(uint8_t *a, size_t n, unsigned len)
{
    for (size_t i = 0; i < n; i++) {
        unsigned bit = (unsigned)i * 8;
        if (bit >= len)
            a[i] = 0;
        else if (len - bit < 8)
            a[i] &= (uint8_t)(0xff00u >> (len - bit));
    }
}

/* The source a peer belongs to; an IPv4-mapped IPv6 address (a dual-stack
 * listener) is its IPv4 address. -EAFNOSUPPORT for other families. */
static int source_id_of(const struct source_limit *t, const struct sockaddr *sa,
                        struct source_id *id)
{
    memset(id, 0, sizeof(*id));
    if (sa->sa_family == AF_INET) {
        memcpy(id->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(id->addr, &a6->s6_addr[12], 4);
        } else {
            id->family = AF_INET6;
            id->len = (uint8_t)t->opts.prefix_v6;
            memcpy(id->addr, a6->s6_addr, 16);
            keep_prefix(id->addr, 16, id->len);
            return 0;
        }
    } else {
        return -EAFNOSUPPORT;
    }
    id->family = AF_INET;
    id->len = (uint8_t)t->opts.prefix_v4;
    keep_prefix(id->addr, 4, id->len);
    return 0;
}

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t source_hash(const struct source_limit *t, const struct source_id *id)
{
    uint64_t a0, a1;
    memcpy(&a0, id->addr, 8);
    memcpy(&a1, id->addr + 8, 8);
    uint64_t h = mix64(t->seed ^ ((uint64_t)id->family << 8 | id->len));
    h = mix64(h ^ a0);
    return mix64(h ^ a1);
}

static uint32_t slot_at(const struct source_limit *t, uint32_t start, unsigned i)
{
    return (start + i) & t->mask;
}

/* One more session of the source whose live key is `live`, unless it has
 * max_connections open. The key is read after ctr: an eviction marks the key
 * before it bumps ctr's generation, so a pin that saw the key live either
 * lands before the bump (and the eviction, seeing it, backs off) or fails on
 * the new generation and looks again. */
static enum pin_result pin(const struct source_limit *t, struct source_entry *e, uint64_t live)
{
    uint64_t c = atomic_load(&e->ctr);
    for (;;) {
        if (atomic_load(&e->key) != live)
            return PIN_GONE;
        if (t->opts.max_connections && (c & OPEN_MASK) >= t->opts.max_connections)
            return PIN_FULL;
        if (atomic_compare_exchange_weak(&e->ctr, &c, c + 1))
            return PIN_OK;
    }
}

/* GCRA: tat is when the bucket is full again. A connection at now costs one
 * interval; it is refused when that would put tat more than burst - 1
 * intervals ahead of now. burst connections pass at once, then one per
 * interval: a token bucket in one word. Only a pinned entry's tat moves. */
static int take_token(const struct source_limit *t, struct source_entry *e, uint64_t now)
{
    if (!t->interval_ns)
        return 1;
    uint64_t tat = atomic_load(&e->tat);
    for (;;) {
        uint64_t from = tat > now ? tat : now;
        if (from - now > t->tolerance_ns)
            return 0;
        if (atomic_compare_exchange_weak(&e->tat, &tat, from + t->interval_ns))
            return 1;
    }
}

/* Nothing of the source would be lost by forgetting it: no session open and
 * a full bucket (a new entry starts full). A hint; evict() decides. */
static int idle(const struct source_entry *e, uint64_t now)
{
    return (atomic_load(&e->ctr) & OPEN_MASK) == 0 && atomic_load(&e->tat) <= now;
}

/* Forgets the live source k of e if it is idle, and gives the slot to claim
 * (a CLAIMING key). 1 when the slot is the caller's now. */
static int evict(struct source_limit *t, struct source_entry *e, uint64_t k, uint64_t claim,
                 uint64_t now)
{
    uint64_t live = k;
    if (!atomic_compare_exchange_strong(&e->key, &k, (live & ~(uint64_t)KEY_STATE) | KEY_EVICTING))
        return 0;
    /* No pin starts now (pins want the key live); a pin that read it live
     * before either holds ctr already or fails on the new generation. So
     * after the bump nothing else writes ctr or tat. */
    uint64_t c = atomic_load(&e->ctr);
    if ((c & OPEN_MASK) || !atomic_compare_exchange_strong(&e->ctr, &c, c + GEN_ONE) ||
        atomic_load(&e->tat) > now) {
        atomic_store(&e->key, live); /* busy after all: it stays */
        return 0;
    }
    atomic_store(&e->key, claim);
    atomic_fetch_add_explicit(&t->evicted, 1, memory_order_relaxed);
    return 1;
}

/* A slot for a source the window does not hold: the first empty one, else
 * the first idle source's. CLAIM_RACE when another thread took the empty
 * slot first; CLAIM_FULL when every slot is busy. */
static int64_t claim_slot(struct source_limit *t, uint32_t start, int64_t empty, uint64_t claim,
                          uint64_t now)
{
    if (empty >= 0) {
        uint64_t zero = 0;
        return atomic_compare_exchange_strong(&t->e[empty].key, &zero, claim) ? empty : CLAIM_RACE;
    }
    for (unsigned i = 0; i < SOURCE_WINDOW; i++) {
        uint32_t s = slot_at(t, start, i);
        struct source_entry *e = &t->e[s];
        uint64_t k = atomic_load(&e->key);
        if ((k & KEY_STATE) == KEY_LIVE && idle(e, now) && evict(t, e, k, claim, now))
            return s;
    }
    return CLAIM_FULL;
}

/* After claiming slot mine: does the window hold the same source anywhere
 * else (live, or being claimed or evicted)? Two threads claiming one source
 * at once each look after their claim, so at least one sees the other and
 * backs off: a source never has two entries. */
static int alone(const struct source_limit *t, uint32_t start, uint32_t mine, uint64_t hk)
{
    for (unsigned i = 0; i < SOURCE_WINDOW; i++) {
        uint32_t s = slot_at(t, start, i);
        uint64_t k = atomic_load(&t->e[s].key);
        if (s != mine && k && (k & ~(uint64_t)KEY_STATE) == hk)
            return 0;
    }
    return 1;
}

/* e is pinned for the connection: the rate decides. */
static enum source_verdict admit(const struct source_limit *t, struct source_entry *e, uint32_t s,
                                 uint64_t now, uint32_t *ref)
{
    if (!take_token(t, e, now)) {
        atomic_fetch_add_explicit(&e->refused, 1, memory_order_relaxed);
        atomic_fetch_sub(&e->ctr, 1);
        return SOURCE_OVER_RATE;
    }
    *ref = s;
    return SOURCE_OK;
}

static void fill(struct source_entry *e, const struct source_id *id)
{
    uint64_t a[2];
    memcpy(a, id->addr, sizeof(a));
    atomic_store_explicit(&e->addr[0], a[0], memory_order_relaxed);
    atomic_store_explicit(&e->addr[1], a[1], memory_order_relaxed);
    atomic_store_explicit(&e->info, (uint32_t)id->family << 8 | id->len, memory_order_relaxed);
    atomic_store_explicit(&e->refused, 0, memory_order_relaxed);
    atomic_store_explicit(&e->tat, 0, memory_order_relaxed); /* a full bucket */
}

enum source_verdict source_limit_acquire(struct source_limit *t, const struct sockaddr *peer,
                                         uint64_t now_ns, uint32_t *ref)
{
    *ref = SOURCE_NONE;
    struct source_id id;
    if (source_id_of(t, peer, &id))
        return SOURCE_OK;
    uint64_t h = source_hash(t, &id);
    uint64_t hk = h & ~(uint64_t)KEY_STATE;
    uint64_t live = hk | KEY_LIVE;
    uint32_t start = (uint32_t)(h >> 2) & t->mask;
    for (int tries = 0; tries < ACQUIRE_TRIES; tries++) {
        int64_t empty = -1;
        int busy = 0;
        for (unsigned i = 0; i < SOURCE_WINDOW && !busy; i++) {
            uint32_t s = slot_at(t, start, i);
            struct source_entry *e = &t->e[s];
            uint64_t k = atomic_load(&e->key);
            if (k == live) {
                enum pin_result r = pin(t, e, live);
                if (r == PIN_OK)
                    return admit(t, e, s, now_ns, ref);
                if (r == PIN_FULL) {
                    /* Not pinned: in a rare race this counts on the entry
                     * that follows an eviction; it is a statistic only. */
                    atomic_fetch_add_explicit(&e->refused, 1, memory_order_relaxed);
                    return SOURCE_OVER_CONNECTIONS;
                }
                busy = 1;
            } else if (k && (k & ~(uint64_t)KEY_STATE) == hk) {
                busy = 1; /* this source is being claimed or forgotten right now */
            } else if (!k && empty < 0) {
                empty = s;
            }
        }
        if (busy)
            continue;
        int64_t mine = claim_slot(t, start, empty, hk | KEY_CLAIMING, now_ns);
        if (mine == CLAIM_FULL)
            break;
        if (mine == CLAIM_RACE)
            continue;
        struct source_entry *e = &t->e[mine];
        if (!alone(t, start, (uint32_t)mine, hk)) {
            atomic_store(&e->key, 0);
            continue;
        }
        fill(e, &id);
        atomic_fetch_add(&e->ctr, 1); /* pinned: nobody pins a claiming entry */
        atomic_store(&e->key, live);
        return admit(t, e, (uint32_t)mine, now_ns, ref);
    }
    /* Fail open: refusing here would let whoever fills the table refuse
     * every new client; counted, so an operator sees it. */
    atomic_fetch_add_explicit(&t->untracked, 1, memory_order_relaxed);
    return SOURCE_OK;
}

void source_limit_release(struct source_limit *t, uint32_t ref)
{
    if (t && ref != SOURCE_NONE)
        atomic_fetch_sub(&t->e[ref].ctr, 1);
}

size_t source_limit_tracked(const struct source_limit *t)
{
    size_t n = 0;
    for (size_t s = 0; s <= t->mask; s++)
        n += (atomic_load_explicit(&t->e[s].key, memory_order_relaxed) & KEY_STATE) == KEY_LIVE;
    return n;
}

/* a ranks above b: more refused, then more open. */
static int ranks_above(const struct source_stat *a, const struct source_stat *b)
{
    return a->refused != b->refused ? a->refused > b->refused : a->open > b->open;
}

static int by_rank(const void *a, const void *b)
{
    const struct source_stat *x = a, *y = b;
    return ranks_above(x, y) ? -1 : ranks_above(y, x) ? 1 : 0;
}

/* h[0..n) is a heap with the lowest-ranked source on top. */
static void sift_down(struct source_stat *h, size_t n, size_t i)
{
    for (;;) {
        size_t low = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_above(&h[low], &h[l]))
            low = l;
        if (r < n && ranks_above(&h[low], &h[r]))
            low = r;
        if (low == i)
            return;
        struct source_stat tmp = h[i];
        h[i] = h[low];
        h[low] = tmp;
        i = low;
    }
}

static void sift_up(struct source_stat *h, size_t i)
{
    while (i > 0 && ranks_above(&h[(i - 1) / 2], &h[i])) {
        struct source_stat tmp = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = tmp;
        i = (i - 1) / 2;
    }
}

/* A consistent copy of slot s, or 0: not live, or changed while read. */
static int snapshot(const struct source_entry *e, struct source_stat *st)
{
    uint64_t k = atomic_load(&e->key);
    if ((k & KEY_STATE) != KEY_LIVE)
        return 0;
    uint64_t a[2] = {atomic_load(&e->addr[0]), atomic_load(&e->addr[1])};
    uint32_t info = atomic_load(&e->info);
    st->open = (uint32_t)(atomic_load(&e->ctr) & OPEN_MASK);
    st->refused = atomic_load(&e->refused);
    st->family = (uint8_t)(info >> 8);
    st->prefix_len = (uint8_t)info;
    memcpy(st->addr, a, sizeof(a));
    return atomic_load(&e->key) == k;
}

size_t source_limit_top(const struct source_limit *t, struct source_stat *out, size_t n)
{
    size_t m = 0;
    for (size_t s = 0; n && s <= t->mask; s++) {
        struct source_stat st;
        if (!snapshot(&t->e[s], &st) || (!st.open && !st.refused))
            continue;
        if (m < n) {
            out[m] = st;
            sift_up(out, m++);
        } else if (ranks_above(&st, &out[0])) {
            out[0] = st;
            sift_down(out, m, 0);
        }
    }
    qsort(out, m, sizeof(*out), by_rank);
    return m;
}

int source_stat_format(const struct source_stat *s, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (!inet_ntop(s->family, s->addr, ip, sizeof(ip)))
        return snprintf(buf, len, "-");
    return snprintf(buf, len, "%s/%u", ip, s->prefix_len);
}
