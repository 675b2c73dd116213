/* src/main.c — sluice's entry point: the command line, config → runtime
 * (pollers, listeners) wiring, and signals: SIGTERM/SIGINT turn /readyz 503,
 * keep accepting for shutdown_delay_ms, stop accepting and let sessions finish
 * within shutdown_grace_ms, then close the rest at shed_rate_per_s; a second
 * one stops at once; SIGUSR1 reopens the connection log (logrotate). */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "config/config.h"
#include "proxy/log.h"
#include "proxy/privs.h"
#include "proxy/runtime.h"
#include "reactor/wait.h"
#include "selfcheck.h"
#include "watch.h"

#define DEFAULT_CONFIG         "sluice.json"
#define SHUTDOWN_POLL_MS       20
#define HEALTHCHECK_TIMEOUT_MS 3000

#define CONTROL_TICK_MS 250  /* retired backends are removed this often */
#define SHED_MARGIN_MS  2000 /* past active / shed_rate_per_s before the rest go at once */

static void on_signal(int sig)
{
    (void)sig;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice [-c FILE] [--check]\n"
               "  -c, --config FILE  the JSON config (default: ./" DEFAULT_CONFIG ")\n"
               "  -t, --check        validate the config, print \"ok\" or every error, exit 0/1\n"
               "      --healthcheck  ask the running sluice's admin /healthz, exit 0 if 200\n"
               "  -v, --version      print the version\n"
               "  -h, --help         this text\n"
               "Signals: SIGTERM/SIGINT turn /readyz 503, keep accepting for shutdown_delay_ms,\n"
               "stop accepting and let sessions finish within shutdown_grace_ms, then close\n"
               "the rest at shed_rate_per_s and exit 0; a second one exits at once.\n"
               "SIGUSR1 reopens the connection log file (log.path), for logrotate.\n");
}

/* The wait for the last sessions: what it looks at, the signals that end it. */
struct sessions_wait {
    struct runtime *rt;
    const sigset_t *sigs;
};

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static int no_sessions(void *arg)
{
    return runtime_active_sessions(((struct sessions_wait *)arg)->rt) == 0;
}

/* Sleeps up to ms on the signals: 2 (stop now) for a second SIGTERM/SIGINT. */
static int second_signal(void *arg, unsigned ms)
{
    struct timespec tick = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    int sig = sigtimedwait(((struct sessions_wait *)arg)->sigs, NULL, &tick);
    if (sig == SIGUSR1) /* logrotate does not know we are stopping */
        runtime_reopen_log(((struct sessions_wait *)arg)->rt);
    return sig == SIGTERM || sig == SIGINT ? 2 : 0;
}

/* Waits for the last sessions to end, up to the grace period or a second
 * signal. Returns 0 when everything ended on its own. */
static int wait_for_sessions(struct runtime *rt, const sigset_t *sigs, unsigned grace_ms)
{
    struct sessions_wait w = {rt, sigs};
    int r = wait_until(no_sessions, second_signal, &w, grace_ms, SHUTDOWN_POLL_MS);
    unsigned long long left = runtime_active_sessions(rt);
    if (r == -ETIMEDOUT) {
        log_info("grace period over: closing %llu remaining sessions", left);
        return 1;
    }
    if (r == 2)
        log_info("second signal: closing %llu sessions now", left);
    return r;
}

/* What the command line asks for. */
struct cli {
    const char *path; /* the config file */
    int check;        /* --check: validate and exit */
    int healthcheck;  /* --healthcheck: ask the running sluice and exit */
};

/* Reads the options into cli. Returns -1 to go on, or the exit status (after
 * --version, --help or a usage error). */
static int parse_args(int argc, char **argv, struct cli *cli)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 't'},
        {"healthcheck", no_argument, NULL, 'H'},  {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cli->path = optarg;
            break;
        case 't':
            cli->check = 1;
            break;
        case 'H':
            cli->healthcheck = 1;
            break;
        case 'v':
            printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!cli->path) {
        if (access(DEFAULT_CONFIG, F_OK) != 0) {
            fprintf(stderr, "sluice: no -c FILE given and ./%s does not exist\n", DEFAULT_CONFIG);
            return 1;
        }
        cli->path = DEFAULT_CONFIG;
        fprintf(stderr, "sluice: using ./%s\n", DEFAULT_CONFIG);
    }
    return -1;
}

/* Loads the config at path into *cfg; 0, or 1 after printing every error. */
static int load_config(const char *path, struct config **cfg)
{
    char *errors = NULL;
    if (config_load_file(path, cfg, &errors) == 0)
        return 0;
    fputs(errors ? errors : "sluice: out of memory reading the config\n", stderr);
    free(errors);
    return 1;
}

/* Blocks the signals sluice takes with sigwaitinfo (sigs gets them), before
 * any thread starts so that every thread inherits the mask. */
static void take_signals(sigset_t *sigs)
{
    /* Writes to a vanished peer must fail with EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* Handlers that never run (the signals stay blocked and are taken with
     * sigwaitinfo) but make the signals count as handled: as PID 1 in a
     * container, a signal with the default action would be dropped. */
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGUSR1, on_signal);
    sigemptyset(sigs);
    sigaddset(sigs, SIGTERM);
    sigaddset(sigs, SIGINT);
    sigaddset(sigs, SIGHUP);
    sigaddset(sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
}

/* Builds the runtime from cfg (it takes cfg), starts the admin, drops root
 * and starts the pollers. 0, or 1 with nothing left running. */
static int start_proxy(struct config *cfg, struct runtime **rtp, struct admin **adminp)
{
    struct runtime *rt = NULL;
    int err = runtime_create(cfg, 0, &rt);
    if (err) {
        log_error("cannot start: %s", strerror(-err));
        return 1;
    }
    /* Before the pollers start: a refused admin bind stops us with nothing running. */
    struct admin *admin = NULL;
    if ((err = admin_start(rt, &rt->cfg->admin, &admin))) {
        runtime_destroy(rt);
        return 1;
    }
    /* Every socket is bound: root is no longer needed. privs_drop logs why it failed. */
    if ((err = privs_drop(rt->boot_cfg->user, rt->boot_cfg->group)) == 0 &&
        (err = runtime_start(rt)))
        log_error("cannot start the pollers: %s", strerror(-err));
    if (err) {
        admin_stop(admin);
        runtime_destroy(rt);
        return 1;
    }
    *rtp = rt;
    *adminp = admin;
    return 0;
}

static void log_started(const struct runtime *rt, const char *path, unsigned long nofile)
{
    log_info("sluice %s started: %u sub-reactors (%s), open files limit %lu, buffer memory "
             "limit %llu MiB, config %s",
             SLUICE_VERSION, pollmgr_count(rt->pm),
             config_poller_balance_name(rt->cfg->poller_balance), nofile,
             rt->cfg->buffer_memory_limit >> 20, path);
    for (size_t i = 0; i < rt->nlisteners; i++) {
        const struct listener *l = rt->listeners[i];
        if (l->nroutes) /* README "SNI and ALPN routing" */
            log_info("listener %s on %s -> %zu routes by TLS server name", l->name, l->listen,
                     l->nroutes);
        else
            log_info("listener %s on %s -> pool %s (%zu backends)", l->name, l->listen,
                     l->pool->name, pool_current(l->pool)->n);
    }
}

/* The grace period is over: sessions are closed at shed_rate_per_s, which
 * takes about active / rate seconds; waits for that (plus a margin) or a
 * second signal. runtime_destroy closes whatever is left at once. */
static int shed_sessions(struct runtime *rt, const sigset_t *sigs, unsigned rate)
{
    uint64_t left = runtime_active_sessions(rt);
    if (!left)
        return 0;
    runtime_shed(rt);
    if (!rate)
        return 1; /* all at once: runtime_destroy does it */
    uint64_t ms = left * 1000u / rate + SHED_MARGIN_MS;
    log_info("closing %llu sessions at %u per second (shed_rate_per_s)", (unsigned long long)left,
             rate);
    struct sessions_wait w = {rt, sigs};
    int r = wait_until(no_sessions, second_signal, &w, ms > UINT_MAX ? UINT_MAX : (unsigned)ms,
                       SHUTDOWN_POLL_MS);
    if (r == 2)
        log_info("second signal: closing %llu sessions now",
                 (unsigned long long)runtime_active_sessions(rt));
    return 1;
}

/* SIGTERM's first phase: /readyz already answers 503 (admin_begin_shutdown),
 * while the listeners keep accepting for delay_ms, so that a load balancer
 * (a Kubernetes Service) stops sending new connections first. 2: a second
 * signal cut it short. */
static int delay_shutdown(struct runtime *rt, const sigset_t *sigs, unsigned delay_ms)
{
    if (!delay_ms)
        return 0;
    log_info("/readyz now answers 503; accepting for %u ms more (shutdown_delay_ms)", delay_ms);
    struct sessions_wait w = {rt, sigs};
    return wait_until(never, second_signal, &w, delay_ms, SHUTDOWN_POLL_MS) == 2 ? 2 : 0;
}

/* Serves until SIGTERM or SIGINT, then stops accepting and waits for the
 * sessions; returns the exit status (1 when a second signal cut the wait). */
static int serve(struct runtime *rt, struct admin *admin, const sigset_t *sigs,
                 const struct config *cfg)
{
    unsigned grace_ms = cfg->shutdown_grace_ms;
    /* The control plane's housekeeping runs between signals. */
    const struct timespec tick = {.tv_sec = 0, .tv_nsec = CONTROL_TICK_MS * 1000000L};
    for (;;) {
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig < 0) {
            runtime_control_tick(rt); /* EAGAIN: the tick; EINTR: harmless */
            continue;
        }
        if (sig == SIGHUP) {
            log_info("SIGHUP: reloading %s", rt->boot_cfg->path); /* boot_cfg: never freed */
            struct reload_report rep;
            runtime_reload_file(rt, &rep); /* logs and counts the outcome */
            reload_report_free(&rep);
            continue;
        }
        if (sig == SIGUSR1) {
            runtime_reopen_log(rt);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            /* Not ready from now on; and a drain?wait= pending now would
             * otherwise hold admin_stop (and the exit) for as long as it
             * asked: it answers now instead. */
            admin_begin_shutdown(admin);
            if (delay_shutdown(rt, sigs, cfg->shutdown_delay_ms) == 2) {
                log_info("second signal: closing %llu sessions now",
                         (unsigned long long)runtime_active_sessions(rt));
                return 1;
            }
            log_info("%s: no longer accepting; waiting up to %u ms for %llu sessions",
                     strsignal(sig), grace_ms, (unsigned long long)runtime_active_sessions(rt));
            runtime_stop_listening(rt);
            int r = wait_for_sessions(rt, sigs, grace_ms);
            if (r == 1)
                shed_sessions(rt, sigs, cfg->shed_rate_per_s);
            return r == 2 ? 1 : 0;
        }
    }
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    int r = parse_args(argc, argv, &cli);
    if (r >= 0)
        return r;
    struct config *cfg = NULL;
    if (load_config(cli.path, &cfg))
        return 1;
    if (cli.check) {
        printf("%s: ok\n", cli.path);
        config_free(cfg);
        return 0;
    }
    if (cli.healthcheck) {
        r = selfcheck_run(&cfg->admin, admin_token_from(&cfg->admin), HEALTHCHECK_TIMEOUT_MS);
        config_free(cfg);
        return r;
    }

    sigset_t sigs;
    take_signals(&sigs);
    unsigned long nofile = privs_raise_nofile();
    struct runtime *rt = NULL;
    struct admin *admin = NULL;
    if (start_proxy(cfg, &rt, &admin))
        return 1;
    /* The admin runs already: a reload may replace rt->cfg and the lists. */
    pthread_mutex_lock(runtime_control(rt));
    log_started(rt, cli.path, nofile);
    pthread_mutex_unlock(runtime_control(rt));
    struct config_watch *watch = NULL;
    if (rt->boot_cfg->watch_config && (r = config_watch_start(rt, cli.path, &watch)))
        log_error("watch_config: not watching %s: %s", cli.path, strerror(-r));
    int status = serve(rt, admin, &sigs, rt->boot_cfg);
    config_watch_stop(watch);
    admin_stop(admin);
    runtime_destroy(rt);
    log_info("stopped");
    return status;
}
