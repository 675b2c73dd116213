/* src/watch.c — the config file watcher (src/watch.h): inotify on the
 * file's directory, not the file, because an atomic replace (the kubelet's
 * `..data` symlink swap, an editor's rename) leaves a watch on the old inode
 * blind. Any event there arms a debounce; when it passes, the file is read
 * through its path (resolved anew) and reloaded if its bytes changed, so
 * other files in the directory and a burst of events cost one look. */
#define _GNU_SOURCE
#include "watch.h"

#include <errno.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "proxy/log.h"
#include "proxy/runtime.h"
#include "reactor/clock.h"

#define DEBOUNCE_MS 200
#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE | IN_DELETE_SELF |       \
     IN_ATTRIB)
#define NO_FILE UINT64_MAX /* the hash of "could not read it" */

struct config_watch {
    struct runtime *rt; /* not owned */
    char *path;         /* owned */
    int ifd;            /* inotify */
    int stop_fd;        /* eventfd: written by config_watch_stop */
    uint64_t last;      /* hash of the bytes last seen */
    pthread_t thread;
};

/* FNV-1a of the file's bytes; NO_FILE when it cannot be read. */
static uint64_t file_hash(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NO_FILE;
    uint64_t h = 14695981039346656037ull;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)buf[i]) * 1099511628211ull;
    int bad = ferror(f);
    fclose(f);
    return bad || h == NO_FILE ? NO_FILE : h;
}

static void settled(struct config_watch *w)
{
    uint64_t h = file_hash(w->path);
    if (h == w->last)
        return;
    if (h == NO_FILE) {
        log_warn("watch_config: cannot read %s (%s); waiting for it to come back", w->path,
                 strerror(errno));
        w->last = h;
        return;
    }
    w->last = h;
    log_info("watch_config: %s changed; reloading", w->path);
    struct reload_report rep;
    runtime_reload_file(w->rt, &rep); /* logs and counts the outcome, as SIGHUP */
    reload_report_free(&rep);
}

static void *watch_main(void *arg)
{
    struct config_watch *w = arg;
    uint64_t due = 0; /* clock_mono_ms() when events settle; 0: none pending */
    for (;;) {
        int timeout = -1;
        if (due) {
            uint64_t now = clock_mono_ms();
            timeout = now >= due ? 0 : (int)(due - now);
        }
        struct pollfd fds[2] = {{.fd = w->ifd, .events = POLLIN},
                                {.fd = w->stop_fd, .events = POLLIN}};
        int n = poll(fds, 2, timeout);
        if (n < 0 && errno != EINTR) {
            log_error("watch_config: poll: %s; no longer watching", strerror(errno));
            return NULL;
        }
        if (fds[1].revents)
            return NULL;
        if (n > 0 && fds[0].revents) {
            char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            while (read(w->ifd, buf, sizeof(buf)) > 0)
                ; /* which name changed does not matter: the file's bytes decide */
            due = clock_mono_ms() + DEBOUNCE_MS;
            continue;
        }
        if (due && clock_mono_ms() >= due) {
            due = 0;
            settled(w);
        }
    }
}

int config_watch_start(struct runtime *rt, const char *path, struct config_watch **out)
{
    struct config_watch *w = calloc(1, sizeof(*w));
    char *dir_copy = strdup(path);
    int err = -ENOMEM;
    if (w)
        w->ifd = w->stop_fd = -1;
    if (!w || !dir_copy || !(w->path = strdup(path)))
        goto fail;
    w->rt = rt;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->ifd < 0 || w->stop_fd < 0) {
        err = -errno;
        goto fail;
    }
    const char *dir = dirname(dir_copy);
    if (inotify_add_watch(w->ifd, dir, WATCH_MASK) < 0) {
        err = -errno;
        log_error("watch_config: cannot watch %s: %s", dir, strerror(errno));
        goto fail;
    }
    w->last = file_hash(path);
    if ((err = -pthread_create(&w->thread, NULL, watch_main, w)))
        goto fail;
    log_info("watch_config: watching %s (directory %s)", path, dir);
    free(dir_copy);
    *out = w;
    return 0;
fail:
    if (w) {
        if (w->ifd >= 0)
            close(w->ifd);
        if (w->stop_fd >= 0)
            close(w->stop_fd);
        free(w->path);
    }
    free(w);
    free(dir_copy);
    return err;
}

void config_watch_stop(struct config_watch *w)
{
    if (!w)
        return;
    uint64_t one = 1;
    if (write(w->stop_fd, &one, sizeof(one)) < 0)
        log_warn("watch_config: cannot stop the watcher: %s", strerror(errno));
    pthread_join(w->thread, NULL);
    close(w->ifd);
    close(w->stop_fd);
    free(w->path);
    free(w);
}
