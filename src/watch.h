/* src/watch.h — "watch_config": reloads the running proxy when its config
 * file changes on disk, as a Kubernetes ConfigMap volume does (the kubelet
 * swaps a `..data` symlink in the file's directory; no signal is sent). */
#pragma once

struct runtime;
struct config_watch;

/* Watches the directory of path (inotify) from a thread of its own; after
 * events settle (debounce) and the file's bytes differ from the last ones
 * seen, reloads exactly as SIGHUP does (runtime_reload_file). Call after the
 * signals are blocked: the thread inherits the mask. 0 or -errno. */
int config_watch_start(struct runtime *rt, const char *path, struct config_watch **out);
/* Stops and joins the thread; NULL is a no-op. */
void config_watch_stop(struct config_watch *w);
