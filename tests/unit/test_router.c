/* tests/unit/test_router.c — admin/router.c driven directly (no HTTP) against
 * a real runtime with running pollers: adding and deleting backends when the
 * health checker's start or stop cannot be posted (a real full inbox behind a
 * stuck sub-reactor) answers 503 and changes nothing, then works once the
 * sub-reactor catches up; shutdown ends a pending ?wait= at once; and the
 * dashboard page (GET /) skips the token but no other rule. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "admin/router.h"
#include "check_main.h"
#include "config/config.h"
#include "config/config_addr.h"
#include "proxy/backend.h"
#include "proxy/backend_edit.h"
#include "proxy/pool.h"
#include "proxy/runtime.h"
#include "reactor/poller.h"

/* One sub-reactor, so it runs every checker and every quiesce passes it.
 * Checks every 60 s on a closed loopback port: they may run, nothing else. */
static const char CONFIG[] =
    "{\"pollers\":1,\"admin\":{\"listen\":\"127.0.0.1:1\"},"
    "\"listeners\":[{\"name\":\"l\",\"listen\":\"127.0.0.1:2\",\"pool\":\"p\"}],"
    "\"pools\":[{\"name\":\"p\",\"health_check\":{\"interval_ms\":60000,\"timeout_ms\":1000},"
    "\"backends\":[{\"name\":\"b0\",\"address\":\"127.0.0.1:3\"}]}]}";

#define INBOX_CAP   65536 /* reactor/poller.c's default */
#define WAIT_MAX_MS 10000 /* every wait below is bounded by this */

static struct admin_ctx ctx;
static struct runtime *rt;

static void setup(void)
{
    struct config *cfg;
    char *errors = NULL;
    config_addr_resolve_names(0);
    ck_assert_int_eq(config_load_buffer(CONFIG, sizeof(CONFIG) - 1, "test", &cfg, &errors), 0);
    ck_assert_int_eq(runtime_create(cfg, RUNTIME_NO_LISTEN, &rt), 0);
    ck_assert_int_eq(runtime_start(rt), 0);
    ck_assert_int_eq(admin_ctx_init(&ctx, rt, NULL), 0);
}

static void teardown(void)
{
    admin_ctx_fini(&ctx);
    runtime_destroy(rt);
    rt = NULL;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sends one request; returns the status, and the body in *body (caller frees)
 * when body is not NULL. */
static int call(const char *method, const char *path, const char *wait, const char *json,
                char **body)
{
    struct admin_request rq = {.method = method,
                               .path = path,
                               .wait = wait,
                               .body = json,
                               .body_len = json ? strlen(json) : 0,
                               .host = "127.0.0.1",
                               .content_type = json ? "application/json" : NULL};
    struct admin_response rs;
    admin_route(&ctx, &rq, &rs);
    if (body)
        *body = rs.body;
    else
        free(rs.body);
    return rs.status;
}

/* --- a stuck sub-reactor with a full inbox --------------------------------- */

struct gate {
    pthread_mutex_t m;
    pthread_cond_t c;
    int entered, open;
};

/* Runs on the sub-reactor and holds it (bounded) until the test opens it. */
static void gate_task(struct poller *p, struct poller_task *t, void *arg)
{
    struct gate *g = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&g->m);
    g->entered = 1;
    pthread_cond_broadcast(&g->c);
    while (!g->open && pthread_cond_timedwait(&g->c, &g->m, &until) == 0)
        ;
    pthread_mutex_unlock(&g->m);
}

static struct gate gate;
static atomic_uint fillers_run;
static unsigned fillers_posted;
static struct poller_task gate_t, fillers[INBOX_CAP + 1];

static void filler_task(struct poller *p, struct poller_task *t, void *arg)
{
    atomic_fetch_add(&fillers_run, 1);
}

/* Holds the (only) sub-reactor in a task and fills its inbox until a post
 * is refused: the state in which a checker's start or stop cannot be posted. */
static void hold_sub_reactor(void)
{
    struct poller *sub = rt->workers[1].poller;
    pthread_mutex_init(&gate.m, NULL);
    pthread_cond_init(&gate.c, NULL);
    gate.entered = gate.open = 0;
    poller_task_init(&gate_t, gate_task, &gate);
    ck_assert_int_eq(poller_post(sub, &gate_t), 0);
    pthread_mutex_lock(&gate.m);
    for (int i = 0; !gate.entered && i < WAIT_MAX_MS / 10; i++) {
        pthread_mutex_unlock(&gate.m);
        sleep_ms(10);
        pthread_mutex_lock(&gate.m);
    }
    ck_assert(gate.entered);
    pthread_mutex_unlock(&gate.m);
    atomic_store(&fillers_run, 0);
    fillers_posted = 0;
    int r = 0;
    while (fillers_posted < INBOX_CAP + 1) {
        poller_task_init(&fillers[fillers_posted], filler_task, NULL);
        if ((r = poller_post(sub, &fillers[fillers_posted])) != 0)
            break;
        fillers_posted++;
    }
    ck_assert_int_eq(r, -EAGAIN);
}

/* Lets the sub-reactor go and waits until it ran everything it was sent. */
static void release_sub_reactor(void)
{
    pthread_mutex_lock(&gate.m);
    gate.open = 1;
    pthread_cond_broadcast(&gate.c);
    pthread_mutex_unlock(&gate.m);
    for (int i = 0; atomic_load(&fillers_run) < fillers_posted && i < WAIT_MAX_MS / 10; i++)
        sleep_ms(10);
    ck_assert_uint_eq(atomic_load(&fillers_run), fillers_posted);
}

static const char ADD_N1[] = "{\"name\":\"n1\",\"address\":\"127.0.0.1:4\"}";

START_TEST(add_when_checker_cannot_start_changes_nothing)
{
    setup();
    struct pool *pl = runtime_find_pool(rt, "p");
    hold_sub_reactor();
    char *body;
    ck_assert_int_eq(call("POST", "/api/v1/pools/p/backends", NULL, ADD_N1, &body), 503);
    ck_assert_ptr_nonnull(strstr(body, "inbox is full"));
    free(body);
    ck_assert_ptr_null(pool_find(pl, "n1"));
    ck_assert_uint_eq(pool_current(pl)->n, 1);
    release_sub_reactor();
    /* The sub-reactor caught up: the same call now succeeds, with a checker
     * that a delete stops through its poller before the backend is freed. */
    ck_assert_int_eq(call("POST", "/api/v1/pools/p/backends", NULL, ADD_N1, NULL), 201);
    struct backend *n1 = pool_find(pl, "n1");
    ck_assert_ptr_nonnull(n1);
    ck_assert_ptr_nonnull(n1->hc);
    ck_assert_int_eq(call("POST", "/api/v1/pools/p/backends/n1/disable", NULL, NULL, NULL), 200);
    ck_assert_int_eq(call("DELETE", "/api/v1/pools/p/backends/n1", NULL, NULL, NULL), 204);
    ck_assert_ptr_null(pool_find(pl, "n1"));
    teardown(); /* under ASan: nothing leaked, nothing used after free */
}
END_TEST

START_TEST(delete_when_checker_cannot_stop_changes_nothing)
{
    setup();
    struct pool *pl = runtime_find_pool(rt, "p");
    struct backend *b0 = pool_find(pl, "b0");
    ck_assert_ptr_nonnull(b0->hc);
    ck_assert_int_eq(call("POST", "/api/v1/pools/p/backends/b0/disable", NULL, NULL, NULL), 200);
    hold_sub_reactor();
    /* The checker cannot be told to stop, so the backend it points at stays. */
    char *body;
    ck_assert_int_eq(call("DELETE", "/api/v1/pools/p/backends/b0", NULL, NULL, &body), 503);
    ck_assert_ptr_nonnull(strstr(body, "inbox is full"));
    free(body);
    ck_assert_ptr_eq(pool_find(pl, "b0"), b0);
    ck_assert_ptr_nonnull(b0->hc);
    ck_assert_uint_eq(pool_current(pl)->n, 1);
    release_sub_reactor();
    ck_assert_int_eq(call("DELETE", "/api/v1/pools/p/backends/b0", NULL, NULL, NULL), 204);
    ck_assert_ptr_null(pool_find(pl, "b0"));
    ck_assert_uint_eq(pool_current(pl)->n, 0);
    teardown();
}
END_TEST

/* --- shutdown and ?wait= ---------------------------------------------------- */

struct drain_call {
    const char *wait;
    int status;
    char *body;
};

static void *drain_thread(void *arg)
{
    struct drain_call *d = arg;
    d->status = call("POST", "/api/v1/pools/p/backends/b0/drain", d->wait, NULL, &d->body);
    return NULL;
}

/* Joins t within WAIT_MAX_MS; 0 when it ended. */
static int join_bounded(pthread_t t)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MAX_MS / 1000;
    return pthread_timedjoin_np(t, NULL, &until);
}

START_TEST(shutdown_ends_waits)
{
    setup();
    struct backend *b0 = pool_find(runtime_find_pool(rt, "p"), "b0");
    ck_assert_int_eq(backend_acquire(b0), 1); /* an open session: the drain cannot end */
    struct drain_call d = {.wait = "20"};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, drain_thread, &d), 0);
    for (int i = 0; backend_state_now(b0) != BACKEND_DRAINING && i < WAIT_MAX_MS / 10; i++)
        sleep_ms(10);
    ck_assert_int_eq(backend_state_now(b0), BACKEND_DRAINING);
    admin_ctx_shutdown(&ctx);
    ck_assert_int_eq(join_bounded(t), 0); /* far below the 20 s asked for */
    ck_assert_int_eq(d.status, 202);
    ck_assert_ptr_nonnull(strstr(d.body, "\"draining\""));
    free(d.body);
    /* Asked for after shutdown began: answers without waiting. */
    struct drain_call again = {.wait = "20"};
    ck_assert_int_eq(pthread_create(&t, NULL, drain_thread, &again), 0);
    ck_assert_int_eq(join_bounded(t), 0);
    ck_assert_int_eq(again.status, 202);
    free(again.body);
    /* The rest of the API still answers. */
    ck_assert_int_eq(call("GET", "/api/v1/pools/p/backends/b0", NULL, NULL, NULL), 200);
    backend_release(b0);
    teardown();
}
END_TEST

/* A retired backend drains, cannot be enabled again, and is removed by the
 * control tick only once its last session ended. */
START_TEST(retired_backend_is_reaped_after_its_last_session)
{
    setup();
    struct pool *pl = runtime_find_pool(rt, "p");
    ck_assert_int_eq(call("POST", "/api/v1/pools/p/backends", NULL,
                          "{\"name\":\"b1\",\"address\":\"127.0.0.1:4\"}", NULL),
                     201);
    struct backend *b1 = pool_find(pl, "b1");
    ck_assert_ptr_nonnull(b1);
    ck_assert_int_eq(backend_acquire(b1), 1); /* an open session */
    pthread_mutex_lock(runtime_control(rt));
    backend_edit_retire(b1, 0);
    pthread_mutex_unlock(runtime_control(rt));
    ck_assert_int_eq(backend_state_now(b1), BACKEND_DRAINING);
    ck_assert_int_eq(call("POST", "/api/v1/pools/p/backends/b1/enable", NULL, NULL, NULL), 409);
    runtime_control_tick(rt);
    ck_assert_ptr_eq(pool_find(pl, "b1"), b1); /* still serving its session */
    backend_release(b1);
    runtime_control_tick(rt);
    ck_assert_ptr_null(pool_find(pl, "b1"));
    ck_assert_ptr_nonnull(pool_find(pl, "b0"));
    ck_assert_int_eq(call("GET", "/api/v1/pools/p/backends/b1", NULL, NULL, NULL), 404);
    teardown();
}
END_TEST

/* --- the dashboard page ---------------------------------------------------- */

static int route(const char *method, const char *path, const char *host, struct admin_response *rs)
{
    struct admin_request rq = {.method = method, .path = path, .host = host};
    admin_route(&ctx, &rq, rs);
    return rs->status;
}

/* GET / answers the page without the token the API requires (a browser
 * cannot send one when it opens a page), with its policy; the Host rule
 * still applies, and nothing else skips the token. */
START_TEST(dashboard_page_needs_no_token_but_keeps_host)
{
    struct admin_response rs;
    setup();
    ctx.rules.token = "t0ken";
    ck_assert_int_eq(route("GET", "/", "127.0.0.1:9090", &rs), 200);
    ck_assert_str_eq(rs.content_type, "text/html; charset=utf-8");
    ck_assert_ptr_nonnull(rs.csp);
    ck_assert_ptr_nonnull(strstr(rs.csp, "script-src 'sha256-"));
    ck_assert_ptr_null(strstr(rs.csp, "unsafe"));
    ck_assert_ptr_nonnull(strstr(rs.body, "<title>sluice dashboard</title>"));
    free(rs.body);
    ck_assert_int_eq(route("GET", "/", "evil.example", &rs), 403);
    ck_assert_ptr_null(rs.csp);
    free(rs.body);
    ck_assert_int_eq(route("POST", "/", "127.0.0.1:9090", &rs), 405);
    ck_assert_str_eq(rs.allow, "GET");
    free(rs.body);
    ck_assert_int_eq(route("GET", "/api/v1/stats", "127.0.0.1:9090", &rs), 401);
    ck_assert_ptr_null(rs.csp);
    free(rs.body);
    ck_assert_int_eq(route("GET", "//", "127.0.0.1:9090", &rs), 401);
    free(rs.body);
    ctx.rules.token = NULL;
    teardown();
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, add_when_checker_cannot_start_changes_nothing);
    tcase_add_test(tc, delete_when_checker_cannot_stop_changes_nothing);
    tcase_add_test(tc, shutdown_ends_waits);
    tcase_add_test(tc, retired_backend_is_reaped_after_its_last_session);
    tcase_add_test(tc, dashboard_page_needs_no_token_but_keeps_host);
    suite_add_tcase(s, tc);
    return s;
}
