/* config/config.h — sluice's configuration as plain C structs, and the loader
 * that builds them from one JSON file (jansson stays inside config/). Every
 * default is applied here; every error names the file, the JSON path and what
 * was expected. A struct config is immutable once loaded: a reload builds a
 * new one. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

#include "reactor/poll-t.h"    /* enum poll_kind: types only */
#include "reactor/pollmgr-t.h" /* enum pollmgr_balance: types only */

struct cfg_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Every address a backend's host name resolved to, in getaddrinfo's order
 * (an address literal is one): "localhost" may be ::1 and 127.0.0.1, and
 * only one of them may listen, so a dial tries them in turn. */
#define CFG_ADDRS_MAX 8
struct cfg_addrs {
    struct cfg_sockaddr a[CFG_ADDRS_MAX];
    unsigned n; /* 1..CFG_ADDRS_MAX once parsed */
};

enum cfg_accept {
    CFG_ACCEPT_MAIN,      /* the main reactor accepts and hands off */
    CFG_ACCEPT_REUSEPORT, /* every sub-reactor accepts on its own SO_REUSEPORT socket */
    CFG_ACCEPT_SHARED,    /* every sub-reactor accepts on one socket (EPOLLEXCLUSIVE) */
};

enum cfg_pool_balance {
    CFG_POOL_ROUND_ROBIN, /* smooth weighted round robin */
    CFG_POOL_LEAST_CONN,  /* fewest active_connections / weight, ties rotate */
    CFG_POOL_RANDOM,      /* power of two random choices on active / weight */
    CFG_POOL_SOURCE_HASH, /* Maglev consistent hashing of the client address */
};

enum cfg_zero_copy {
    CFG_ZERO_COPY_NONE,   /* linkbufs: recvmsg/sendmsg through user space */
    CFG_ZERO_COPY_SPLICE, /* splice(2) through a pipe per direction */
};

/* Active health checks; enabled when the pool has a "health_check" object. */
struct cfg_health_check {
    int enabled;
    unsigned interval_ms;
    unsigned timeout_ms;
    unsigned rise;
    unsigned fall;
    char *send; /* owned; NULL: connect only */
    size_t send_len;
    char *expect; /* owned; NULL: no reply expected */
    size_t expect_len;
};

/* How a backend written as a host name follows DNS (README "DNS discovery"). */
enum cfg_resolve {
    CFG_RESOLVE_FIRST, /* one backend dialing the name's addresses in turn (default) */
    CFG_RESOLVE_ALL,   /* one backend per address of the name, NAME@ADDR:PORT */
};

struct cfg_backend {
    char *name; /* owned */
    /* owned: as written; NULL with "srv". A host name is resolved at load
     * through the system resolver when resolver.servers is not set (addrs),
     * then again while sluice runs (proxy/resolver.c). */
    char *address;
    struct cfg_addrs addrs; /* n == 0: not resolved yet ("all", "srv", resolver.servers) */
    unsigned weight;
    enum cfg_resolve resolve;
    char *host;    /* owned: address's host name; NULL for an address literal or "srv" */
    unsigned port; /* address's port, with host */
    char *srv;     /* owned: the SRV name ("_redis._tcp.example"), else NULL; implies "all" */
};

/* The DNS resolver of backends written as names (top-level "resolver"). */
#define CFG_RESOLVER_SERVERS_MAX 8
struct cfg_resolver {
    struct cfg_sockaddr servers[CFG_RESOLVER_SERVERS_MAX];
    size_t nservers;         /* 0: the nameservers of /etc/resolv.conf */
    unsigned resolve_min_ms; /* a record's TTL is clamped to [min, max] */
    unsigned resolve_max_ms;
    unsigned timeout_ms; /* one query's wait for a server's answer */
};

enum cfg_proxy_protocol {
    CFG_PROXY_PROTOCOL_OFF, /* the backend sees sluice's own address */
    CFG_PROXY_PROTOCOL_V1,  /* a text header first on every upstream connection */
    CFG_PROXY_PROTOCOL_V2,  /* a binary header (with a unique id TLV) */
};

struct cfg_pool {
    char *name; /* owned */
    enum cfg_pool_balance balance;
    enum cfg_zero_copy zero_copy;
    enum cfg_proxy_protocol proxy_protocol;
    unsigned connect_timeout_ms;
    unsigned idle_timeout_ms;       /* 0: never */
    unsigned retries;               /* further backends tried after the first */
    unsigned buffer_high_watermark; /* bytes buffered per direction before reading pauses */
    unsigned buffer_low_watermark;  /* bytes under which reading resumes */
    unsigned maglev_table_size;     /* source_hash: a prime */
    unsigned max_fails; /* passive (no active checks): failures in the window → down; 0 off */
    unsigned fail_window_ms; /* ... and how long it then stays down */
    /* Sessions older than this (±10 % jitter) are closed, so long-lived
     * connections spread over backends added since; 0: never. */
    unsigned max_session_age_ms;
    struct cfg_health_check health_check;
    struct cfg_backend *backends; /* owned array */
    size_t nbackends;
};

/* One of a listener's "routes" (README "SNI and ALPN routing"): the pool for
 * the clients whose TLS ClientHello names sni (exact, or "*." and one label)
 * and, when alpn is set, offers that protocol. Matching is proxy/route.c's. */
struct cfg_route {
    char *sni;      /* owned, lowercased; NULL: any name (or none) */
    char *alpn;     /* owned; NULL: any protocols (or none) */
    int is_default; /* {"default": true}: no sni, no alpn */
    char *pool;     /* owned */
    size_t pool_index;
};

/* A listener's "per_source" limits (README "Per-source limits"): clients are
 * grouped by prefix (source_prefix_v4/_v6) and each group is capped. */
struct cfg_per_source {
    int enabled;              /* the listener has a "per_source" object */
    unsigned max_connections; /* open sessions per source; 0: no cap */
    unsigned rate_per_s;      /* new connections per second per source; 0: no rate limit */
    unsigned burst;           /* connections at once above the rate; default rate_per_s */
    int reset;                /* refuse with a RST instead of a FIN */
    unsigned max_sources;     /* table entries (a power of two): sources tracked at once */
};

struct cfg_listener {
    char *name;   /* owned */
    char *listen; /* owned: as written */
    struct cfg_sockaddr addr;
    char *pool; /* owned; NULL when the listener has routes */
    size_t pool_index;
    unsigned max_connections; /* 0: unlimited */
    unsigned backlog;
    int accept_proxy_protocol;   /* read a PROXY v1/v2 header first (default 0) */
    unsigned inspect_timeout_ms; /* what the listener reads first must come within it */
    struct cfg_route *routes;    /* owned array; NULL: every client goes to pool */
    size_t nroutes;
    struct cfg_per_source per_source;
    unsigned source_prefix_v4; /* bits of a client's IPv4 address that name its source */
    unsigned source_prefix_v6; /* ... of an IPv6 address */
};

struct cfg_admin {
    char *listen; /* owned */
    struct cfg_sockaddr addr;
    char *token; /* owned; NULL when unset */
    /* Host names the admin answers to besides IP literals and localhost (the
     * Host header check against DNS rebinding); owned, each owned. */
    char **allowed_hosts;
    size_t nallowed_hosts;
};

/* The connection log (README "Connection log"). */
struct cfg_log {
    int connections;            /* 1: a JSON line per finished session */
    char *path;                 /* owned; NULL: stdout */
    unsigned flush_interval_ms; /* periodic lines for open sessions; 0: none */
    unsigned ring_size;         /* lines each poller may have waiting for the logger */
};

struct config {
    char *path;       /* owned: the file it came from */
    unsigned pollers; /* 0: one per CPU */
    enum pollmgr_balance poller_balance;
    enum poll_kind io; /* the pollers' backend wanted; io_uring falls back to epoll */
    enum cfg_accept accept;
    unsigned shutdown_grace_ms;
    /* After SIGTERM, /readyz answers 503 at once while the listeners keep
     * accepting this long (Kubernetes removes the endpoint meanwhile). */
    unsigned shutdown_delay_ms;
    /* Forced closes (drain deadline, disable with close, the end of the
     * shutdown grace) happen at most this many per second; 0: all at once. */
    unsigned shed_rate_per_s;
    unsigned long long buffer_memory_limit; /* bytes of relay buffers at most, all sessions */
    int watch_config; /* reload when the file changes on disk (inotify on its directory) */
    char *user;       /* owned; NULL: keep the starting user */
    char *group;      /* owned; NULL: the user's primary group */
    struct cfg_admin admin;
    struct cfg_log log;
    struct cfg_resolver resolver;
    struct cfg_listener *listeners; /* owned array */
    size_t nlisteners;
    struct cfg_pool *pools; /* owned array */
    size_t npools;
};

/* Loads and validates. On success returns 0 and *out; on failure returns the
 * number of errors and sets *errors to a malloc'd text, one error per line
 * ("FILE: PATH: message"), which the caller frees. */
int config_load_file(const char *path, struct config **out, char **errors);
/* Same for a buffer; `name` stands in for the file name in messages. */
int config_load_buffer(const char *data, size_t len, const char *name, struct config **out,
                       char **errors);
void config_free(struct config *cfg);

const char *config_poller_balance_name(enum pollmgr_balance b);
const char *config_io_name(enum poll_kind k);
const char *config_pool_balance_name(enum cfg_pool_balance b);
