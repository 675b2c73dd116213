/* proxy/privs.c — see proxy/privs.h. */
#define _GNU_SOURCE
#include "privs.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

unsigned long privs_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (unsigned long)rl.rlim_cur;
}

int privs_drop(const char *user, const char *group)
{
    if (!user)
        return 0;
    if (geteuid() != 0) {
        log_warn("not started as root: ignoring user \"%s\"", user);
        return 0;
    }
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        log_error("user \"%s\" does not exist", user);
        return -ENOENT;
    }
    gid_t gid = pw->pw_gid;
    if (group) {
        struct group *gr = getgrnam(group);
        if (!gr) {
            log_error("group \"%s\" does not exist", group);
            return -ENOENT;
        }
        gid = gr->gr_gid;
    }
    /* Supplementary groups first, then the group, then the user: the other
     * way round, setgid would no longer be allowed. glibc applies each call
     * to every thread of the process. */
    if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0) {
        int err = errno;
        log_error("cannot drop privileges to %s: %s", user, strerror(err));
        return -err;
    }
    if (setuid(0) == 0) {
        log_error("privileges could be regained after dropping them: refusing to run");
        return -EPERM;
    }
    log_info("dropped privileges: running as user %s (uid %u), group %u", user,
             (unsigned)pw->pw_uid, (unsigned)gid);
    return 0;
}
