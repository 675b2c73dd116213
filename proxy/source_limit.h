/* proxy/source_limit.h — one listener's per-source limits: open sessions and
 * a rate of new connections per client prefix (README "Per-source limits").
 * A fixed table of SOURCE_ENTRY_BYTES-byte entries, allocated once, read and
 * written lock-free by every poller that accepts for the listener (several
 * at once with accept "reuseport") and by the sub-reactors that close its
 * sessions. Idle sources (no open session, a full bucket) are forgotten when
 * a new one needs their place. It knows no socket and no session: the
 * listener asks at accept, the session gives its place back when it closes. */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOURCE_NONE   UINT32_MAX /* a connection the table does not track */
#define SOURCE_WINDOW 16         /* the slots a source may live in, from its hash */

struct source_limit_opts {
    unsigned max_connections; /* open sessions per source; 0: no cap */
    unsigned rate_per_s;      /* 0: no rate limit */
    unsigned burst;           /* connections at once above the rate (>= 1 with a rate) */
    unsigned prefix_v4;       /* 0..32 bits name a source */
    unsigned prefix_v6;       /* 0..128 */
    unsigned capacity;        /* entries: a power of two, at least SOURCE_WINDOW */
};

/* One tracked source. Every field is atomic: pollers read and write it at
 * once. key is the state word: 0 empty, else the hash of the prefix (bits
 * 2..63) and a state (bits 0..1, source_limit.c). ctr packs the open
 * sessions (bits 0..31) and a generation (32..63) bumped when the entry is
 * given to another source, so a stale increment cannot land on it. tat is
 * the rate limit's whole state (GCRA, the token bucket as one number: the
 * clock_mono_ns() at which the bucket will be full again). */
struct source_entry {
    _Atomic uint64_t key;
    _Atomic uint64_t ctr;
    _Atomic uint64_t tat;
    _Atomic uint64_t addr[2]; /* the prefix, masked (for the admin's view) */
    _Atomic uint32_t refused; /* connections refused since it was tracked */
    _Atomic uint32_t info;    /* family << 8 | prefix length */
};
#define SOURCE_ENTRY_BYTES sizeof(struct source_entry) /* 48 */

enum source_verdict {
    SOURCE_OK = 0,           /* go on (tracked, or untracked: the table was full) */
    SOURCE_OVER_CONNECTIONS, /* max_connections sessions of this source are open */
    SOURCE_OVER_RATE,        /* its bucket is empty */
};

struct source_limit {
    struct source_entry *e;         /* owned: capacity entries */
    uint32_t mask;                  /* capacity - 1 */
    uint64_t seed;                  /* per table, random: an attacker cannot aim at a window */
    uint64_t interval_ns;           /* 1 s / rate_per_s; 0: no rate limit */
    uint64_t tolerance_ns;          /* (burst - 1) * interval_ns */
    struct source_limit_opts opts;  /* as configured (the admin's view) */
    atomic_uint_fast64_t evicted;   /* idle sources forgotten to make room */
    atomic_uint_fast64_t untracked; /* connections let through untracked: no entry free */
};

/* Snapshot of one source for the admin. */
struct source_stat {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t prefix_len;
    uint8_t addr[16];
    uint32_t open;
    uint32_t refused;
};

int source_limit_init(struct source_limit *t, const struct source_limit_opts *o);
void source_limit_fini(struct source_limit *t);

/* Any thread, lock-free: may a connection from peer go on at now_ns
 * (clock_mono_ns)? On SOURCE_OK, *ref is the place the connection holds
 * (give it back with source_limit_release once it ends), or SOURCE_NONE when
 * it is not tracked (an address family without a prefix, or no entry could
 * be had: it goes on, counted in `untracked`). On a refusal nothing is held.
 * Never admits more than max_connections open or, over any span of time T,
 * more than burst + rate_per_s * T; a refusal may be spurious only while
 * another poller accepts for the same source at the very same moment. */
enum source_verdict source_limit_acquire(struct source_limit *t, const struct sockaddr *peer,
                                         uint64_t now_ns, uint32_t *ref);
/* Any thread: the session that held ref ended. NULL t or SOURCE_NONE: nothing. */
void source_limit_release(struct source_limit *t, uint32_t ref);

/* Admin (any thread; a snapshot, not a lock): the sources tracked now. */
size_t source_limit_tracked(const struct source_limit *t);
/* The n most limited sources (most refused, then most open; sources with
 * neither are left out) into out[], most limited first; returns how many.
 * One pass over the table, no allocation. */
size_t source_limit_top(const struct source_limit *t, struct source_stat *out, size_t n);
/* "192.0.2.0/24" or "2001:db8::/64", NUL-terminated within len. */
int source_stat_format(const struct source_stat *s, char *buf, size_t len);
/* The table's memory: capacity * SOURCE_ENTRY_BYTES. */
size_t source_limit_bytes(const struct source_limit *t);
