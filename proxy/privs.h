/* proxy/privs.h — process-level limits and privileges at start-up: raise the
 * open-files soft limit to the hard limit (every session costs two fds), and,
 * when started as root with `user` in the config, drop to that user and group
 * once every socket is bound (as nginx and HAProxy do). */
#pragma once

/* Returns the soft limit now in force. */
unsigned long privs_raise_nofile(void);

/* No-op (logged) when not root. Returns 0, or -errno with the reason logged. */
int privs_drop(const char *user, const char *group);
