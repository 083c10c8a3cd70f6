#include "util/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/util.h"

#define PROC_MAX_GROUPS 64

static const char *const default_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C", "TZ=UTC",
                                          NULL};

int proc_user_resolve(const char *name, proc_user *out, pf_err *e)
{
    memset(out, 0, sizeof *out);
    char buf[4096];
    struct passwd pw, *res = NULL;
    if (geteuid() == 0) {
        if (!name || !*name)
            return err_internal(e, "no OS user named for child processes");
        int rc = getpwnam_r(name, &pw, buf, sizeof buf, &res);
        if (rc != 0 || !res)
            return err_internal(e, "OS user %s not found%s%s", name, rc ? ": " : "",
                                rc ? strerror(rc) : "");
        if (res->pw_uid == 0)
            return err_internal(e, "OS user %s is root; children need an unprivileged user", name);
        out->switch_user = true;
    } else {
        int rc = getpwuid_r(geteuid(), &pw, buf, sizeof buf, &res);
        if (rc != 0 || !res)
            return err_internal(e, "cannot look up the current OS user (uid %d)", (int)geteuid());
    }
    out->uid = res->pw_uid;
    out->gid = res->pw_gid;
    snprintf(out->name, sizeof out->name, "%s", res->pw_name);
    return 0;
}

/* Everything the child needs, computed before fork so the child only makes
 * async-signal-safe system calls. */
typedef struct spawn_plan {
    const proc_opts *o;
    const char *const *envp;
    const char *cwd;
    int in_fd;  /* becomes stdin */
    int out_fd; /* becomes stdout and stderr */
    int err_pipe;
    gid_t groups[PROC_MAX_GROUPS];
    int ngroups;
} spawn_plan;

enum { STAGE_SETSID = 1, STAGE_GROUPS, STAGE_GID, STAGE_UID, STAGE_CHDIR, STAGE_DUP, STAGE_EXEC };

static const char *stage_name(int stage)
{
    switch (stage) {
    case STAGE_SETSID:
        return "setsid";
    case STAGE_GROUPS:
        return "setgroups";
    case STAGE_GID:
        return "setgid";
    case STAGE_UID:
        return "setuid";
    case STAGE_CHDIR:
        return "chdir";
    case STAGE_DUP:
        return "dup2";
    default:
        return "exec";
    }
}

static void child_fail(int fd, int stage)
{
    int msg[2] = {stage, errno};
    ssize_t w = write(fd, msg, sizeof msg);
    (void)w;
    _exit(127);
}

/* Runs in the child between fork and exec: system calls only. */
static void child_exec(const spawn_plan *p)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    if (p->o->new_session && setsid() < 0)
        child_fail(p->err_pipe, STAGE_SETSID);
    if (p->o->user && p->o->user->switch_user) {
        /* raw system calls: the child has one thread, so glibc's cross-thread setxid
         * machinery is neither needed nor async-signal-safe */
        if (syscall(SYS_setgroups, (size_t)p->ngroups, p->groups) < 0)
            child_fail(p->err_pipe, STAGE_GROUPS);
        if (syscall(SYS_setresgid, p->o->user->gid, p->o->user->gid, p->o->user->gid) < 0)
            child_fail(p->err_pipe, STAGE_GID);
        if (syscall(SYS_setresuid, p->o->user->uid, p->o->user->uid, p->o->user->uid) < 0)
            child_fail(p->err_pipe, STAGE_UID);
    }
    if (chdir(p->cwd) < 0)
        child_fail(p->err_pipe, STAGE_CHDIR);
    if (dup2(p->in_fd, 0) < 0 || dup2(p->out_fd, 1) < 0 || dup2(p->out_fd, 2) < 0)
        child_fail(p->err_pipe, STAGE_DUP);
    /* Drop every other inherited descriptor (listening sockets, the catalog) except the
     * close-on-exec error pipe, which exec closes. */
    int ep = p->err_pipe;
    if (ep > 3)
        syscall(SYS_close_range, 3u, (unsigned)ep - 1, 0u);
    syscall(SYS_close_range, (unsigned)ep + 1, ~0u, 0u);
    execve(p->o->argv[0], (char *const *)p->o->argv, (char *const *)p->envp);
    child_fail(p->err_pipe, STAGE_EXEC);
}

/* Forks and execs. out_fd/in_fd are the child's stdio (owned by the caller). */
static pid_t spawn(const proc_opts *o, int in_fd, int out_fd, pf_err *e)
{
    if (!o->argv || !o->argv[0] || o->argv[0][0] != '/')
        return err_internal(e, "spawn: argv[0] must be an absolute path");
    spawn_plan p;
    memset(&p, 0, sizeof p);
    p.o = o;
    p.envp = o->envp ? o->envp : default_env;
    p.cwd = o->cwd ? o->cwd : "/";
    p.in_fd = in_fd;
    p.out_fd = out_fd;
    if (o->user && o->user->switch_user) {
        p.ngroups = PROC_MAX_GROUPS;
        if (getgrouplist(o->user->name, o->user->gid, p.groups, &p.ngroups) < 0) {
            p.groups[0] = o->user->gid;
            p.ngroups = 1;
        }
    }
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0)
        return err_internal(e, "spawn %s: pipe: %s", o->argv[0], strerror(errno));
    if (ep[1] < 3) {
        /* keep the error pipe clear of the stdio slots the child overwrites */
        int moved = fcntl(ep[1], F_DUPFD_CLOEXEC, 3);
        if (moved < 0) {
            int en = errno;
            close(ep[0]);
            close(ep[1]);
            return err_internal(e, "spawn %s: fcntl: %s", o->argv[0], strerror(en));
        }
        close(ep[1]);
        ep[1] = moved;
    }
    p.err_pipe = ep[1];
    pid_t pid = fork();
    if (pid < 0) {
        int en = errno;
        close(ep[0]);
        close(ep[1]);
        return err_internal(e, "spawn %s: fork: %s", o->argv[0], strerror(en));
    }
    if (pid == 0)
        child_exec(&p);
    close(ep[1]);
    int msg[2];
    ssize_t n;
    do
        n = read(ep[0], msg, sizeof msg);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof msg) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return err_internal(e, "spawn %s: %s: %s", o->argv[0], stage_name(msg[0]),
                            strerror(msg[1]));
    }
    return pid;
}

static int open_devnull(int flags, pf_err *e)
{
    int fd = open("/dev/null", flags | O_CLOEXEC);
    if (fd < 0)
        return err_internal(e, "open /dev/null: %s", strerror(errno));
    return fd;
}

static int open_output(const proc_opts *o, pf_err *e)
{
    if (!o->output_path)
        return open_devnull(O_WRONLY, e);
    int fd = open(o->output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return err_internal(e, "open %s: %s", o->output_path, strerror(errno));
    if (o->user && o->user->switch_user && fchown(fd, o->user->uid, o->user->gid) < 0) {
        int en = errno;
        close(fd);
        return err_internal(e, "chown %s: %s", o->output_path, strerror(en));
    }
    return fd;
}

pid_t proc_start(const proc_opts *o, pf_err *e)
{
    pid_t pid = -1;
    int in_fd = -1, out_fd = -1;
    if ((in_fd = open_devnull(O_RDONLY, e)) < 0)
        goto out;
    if ((out_fd = open_output(o, e)) < 0)
        goto out;
    pid = spawn(o, in_fd, out_fd, e);
out:
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    return pid;
}

static void wait_blocking(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0 && errno == EINTR)
        ;
}

int proc_run(const proc_opts *o, char *out, size_t outsz, int timeout_ms, pf_err *e)
{
    int ret = -1;
    int in_fd = -1, out_fd = -1, rd = -1;
    pid_t pid = -1;
    size_t used = 0;
    if (out && outsz)
        out[0] = '\0';
    if ((in_fd = open_devnull(O_RDONLY, e)) < 0)
        goto out;
    if (out && outsz) {
        int pp[2];
        if (pipe2(pp, O_CLOEXEC) < 0) {
            err_internal(e, "run %s: pipe: %s", o->argv[0], strerror(errno));
            goto out;
        }
        rd = pp[0];
        out_fd = pp[1];
    } else if ((out_fd = open_output(o, e)) < 0) {
        goto out;
    }
    if ((pid = spawn(o, in_fd, out_fd, e)) < 0)
        goto out;
    close(out_fd);
    out_fd = -1;

    int64_t deadline = timeout_ms > 0 ? util_now_ms() + timeout_ms : INT64_MAX;
    int status = 0;
    bool exited = false, lost = false;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            exited = true;
        /* reaped by another thread (proc_signal_wait on this child, e.g. a stop interrupting
         * it): it is gone, its status unknown */
        if (w < 0 && errno == ECHILD)
            exited = lost = true;
        if (rd >= 0) {
            /* drain what is there; after exit only what is already buffered (a grandchild
             * may keep the pipe open) */
            for (;;) {
                char tmp[4096];
                struct pollfd pfd = {.fd = rd, .events = POLLIN};
                int pr = poll(&pfd, 1, 0);
                if (pr <= 0)
                    break;
                ssize_t n = read(rd, tmp, sizeof tmp);
                if (n <= 0) {
                    if (n < 0 && errno == EINTR)
                        continue;
                    close(rd);
                    rd = -1;
                    break;
                }
                size_t room = outsz - 1 - used;
                size_t take = (size_t)n < room ? (size_t)n : room;
                memcpy(out + used, tmp, take);
                used += take;
                out[used] = '\0';
            }
        }
        if (exited)
            break;
        int64_t now = util_now_ms();
        if (now >= deadline) {
            if (o->new_session)
                kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            wait_blocking(pid, NULL);
            err_internal(e, "%s timed out after %d ms", o->argv[0], timeout_ms);
            goto out;
        }
        int wait_ms = (int)((deadline - now) < 20 ? (deadline - now) : 20);
        if (rd >= 0) {
            struct pollfd pfd = {.fd = rd, .events = POLLIN};
            poll(&pfd, 1, wait_ms);
        } else {
            struct timespec ts = {0, (long)wait_ms * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (lost) {
        err_internal(e, "%s was stopped (its status went to the thread that stopped it)",
                     o->argv[0]);
    } else if (WIFEXITED(status)) {
        ret = WEXITSTATUS(status);
    } else {
        err_internal(e, "%s killed by signal %d", o->argv[0],
                     WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    }
out:
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (rd >= 0)
        close(rd);
    return ret;
}

bool proc_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    return kill(pid, 0) == 0 || errno == EPERM;
}

bool proc_reap(pid_t pid)
{
    if (pid <= 0)
        return true;
    pid_t w = waitpid(pid, NULL, WNOHANG);
    if (w == pid)
        return true;
    if (w == 0)
        return false;
    /* not our child: gone when kill() says so */
    return !proc_alive(pid);
}

bool proc_signal_wait(pid_t pid, int sig, int timeout_ms)
{
    if (pid <= 0)
        return true;
    if (kill(pid, sig) < 0 && errno == ESRCH) {
        proc_reap(pid);
        return true;
    }
    int64_t deadline = util_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (proc_reap(pid))
            return true;
        if (util_now_ms() >= deadline)
            return false;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ---- filesystem ---- */

static int chown_to(const char *path, const proc_user *user, pf_err *e)
{
    if (user && user->switch_user && lchown(path, user->uid, user->gid) < 0)
        return err_internal(e, "chown %s: %s", path, strerror(errno));
    return 0;
}

int fs_mkdirs(const char *path, int mode, const proc_user *user, pf_err *e)
{
    int ret = -1;
    char *p = xstrdup(path);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, (mode_t)mode) == 0) {
            if (chmod(p, (mode_t)mode) < 0) {
                err_internal(e, "chmod %s: %s", p, strerror(errno));
                goto out;
            }
            if (chown_to(p, user, e) < 0)
                goto out;
        } else if (errno != EEXIST) {
            err_internal(e, "mkdir %s: %s", p, strerror(errno));
            goto out;
        } else {
            struct stat st;
            if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
                err_internal(e, "mkdir %s: exists and is not a directory", p);
                goto out;
            }
        }
        *s = saved;
        if (saved == '\0')
            break;
    }
    ret = 0;
out:
    free(p);
    return ret;
}

static _Thread_local int rm_errno;
static _Thread_local char rm_path[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (flag == FTW_DP) ? rmdir(path) : unlink(path);
    if (rc < 0 && errno != ENOENT) {
        rm_errno = errno;
        snprintf(rm_path, sizeof rm_path, "%s", path);
        return 1;
    }
    return 0;
}

int fs_remove_tree(const char *path, pf_err *e)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return err_internal(e, "stat %s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return err_internal(e, "unlink %s: %s", path, strerror(errno));
        return 0;
    }
    rm_errno = 0;
    int rc = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) {
        if (rm_errno)
            return err_internal(e, "remove %s: %s", rm_path, strerror(rm_errno));
        if (errno == ENOENT)
            return 0;
        return err_internal(e, "remove %s: %s", path, strerror(errno));
    }
    return 0;
}

static int copy_file_fd(int sfd, int dfd, off_t size)
{
    /* keep holes (the golden's WAL segment is mostly zeros) and copy data in-kernel */
    off_t pos = 0;
    while (pos < size) {
        off_t data = lseek(sfd, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO)
                break; /* hole to the end */
            data = pos;
        }
        off_t hole = lseek(sfd, data, SEEK_HOLE);
        if (hole < 0)
            hole = size;
        off_t in = data, outp = data;
        while (in < hole) {
            ssize_t n = copy_file_range(sfd, &in, dfd, &outp, (size_t)(hole - in), 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EXDEV && errno != ENOSYS && errno != EINVAL && errno != EOPNOTSUPP)
                    return -1;
                /* fallback: plain read/write */
                char buf[65536];
                while (in < hole) {
                    size_t want =
                        (size_t)(hole - in) < sizeof buf ? (size_t)(hole - in) : sizeof buf;
                    ssize_t r = pread(sfd, buf, want, in);
                    if (r <= 0)
                        return r < 0 ? -1 : 0;
                    ssize_t off = 0;
                    while (off < r) {
                        ssize_t wr = pwrite(dfd, buf + off, (size_t)(r - off), outp);
                        if (wr < 0) {
                            if (errno == EINTR)
                                continue;
                            return -1;
                        }
                        off += wr;
                        outp += wr;
                    }
                    in += r;
                }
                break;
            }
            if (n == 0)
                break;
        }
        pos = hole;
    }
    return ftruncate(dfd, size);
}

static int copy_dir(int sdir, int ddir, const char *where, const proc_user *user, pf_err *e)
{
    int ret = -1;
    int dup_fd = dup(sdir);
    if (dup_fd < 0)
        return err_internal(e, "copy %s: dup: %s", where, strerror(errno));
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        close(dup_fd);
        return err_internal(e, "copy %s: opendir: %s", where, strerror(errno));
    }
    rewinddir(d);
    struct dirent *de;
    while ((errno = 0, de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        struct stat st;
        if (fstatat(sdir, n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            err_internal(e, "copy %s/%s: stat: %s", where, n, strerror(errno));
            goto out;
        }
        mode_t perm = st.st_mode & 07777;
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(ddir, n, 0700) < 0) {
                err_internal(e, "copy %s/%s: mkdir: %s", where, n, strerror(errno));
                goto out;
            }
            int s2 = openat(sdir, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int d2 = openat(ddir, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            int rc = -1;
            if (s2 < 0 || d2 < 0) {
                err_internal(e, "copy %s/%s: open: %s", where, n, strerror(errno));
            } else {
                char *sub = xasprintf("%s/%s", where, n);
                rc = copy_dir(s2, d2, sub, user, e);
                free(sub);
                if (rc == 0 && fchmod(d2, perm) < 0)
                    rc = err_internal(e, "copy %s/%s: chmod: %s", where, n, strerror(errno));
                if (rc == 0 && user && user->switch_user && fchown(d2, user->uid, user->gid) < 0)
                    rc = err_internal(e, "copy %s/%s: chown: %s", where, n, strerror(errno));
            }
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
            if (rc < 0)
                goto out;
        } else if (S_ISREG(st.st_mode)) {
            int sf = openat(sdir, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            if (sf < 0) {
                err_internal(e, "copy %s/%s: open: %s", where, n, strerror(errno));
                goto out;
            }
            int df = openat(ddir, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (df < 0) {
                err_internal(e, "copy %s/%s: create: %s", where, n, strerror(errno));
                close(sf);
                goto out;
            }
            int rc = copy_file_fd(sf, df, st.st_size);
            if (rc == 0)
                rc = fchmod(df, perm);
            if (rc == 0 && user && user->switch_user)
                rc = fchown(df, user->uid, user->gid);
            int en = errno;
            close(sf);
            close(df);
            if (rc < 0) {
                err_internal(e, "copy %s/%s: %s", where, n, strerror(en));
                goto out;
            }
        } else if (S_ISLNK(st.st_mode)) {
            char target[4096];
            ssize_t l = readlinkat(sdir, n, target, sizeof target - 1);
            if (l < 0) {
                err_internal(e, "copy %s/%s: readlink: %s", where, n, strerror(errno));
                goto out;
            }
            target[l] = '\0';
            if (symlinkat(target, ddir, n) < 0) {
                err_internal(e, "copy %s/%s: symlink: %s", where, n, strerror(errno));
                goto out;
            }
            if (user && user->switch_user &&
                fchownat(ddir, n, user->uid, user->gid, AT_SYMLINK_NOFOLLOW) < 0) {
                err_internal(e, "copy %s/%s: chown: %s", where, n, strerror(errno));
                goto out;
            }
        }
        /* sockets, fifos and devices are skipped: a data directory has none */
    }
    if (errno) {
        err_internal(e, "copy %s: readdir: %s", where, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    closedir(d);
    return ret;
}

int fs_copy_tree(const char *src, const char *dst, const proc_user *user, pf_err *e)
{
    int ret = -1;
    int sfd = -1, dfd = -1;
    struct stat st;
    if ((sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fstat(sfd, &st) < 0) {
        err_internal(e, "copy %s: %s", src, strerror(errno));
        goto out;
    }
    if (mkdir(dst, 0700) < 0) {
        err_internal(e, "copy to %s: mkdir: %s", dst, strerror(errno));
        goto out;
    }
    if ((dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        err_internal(e, "copy to %s: %s", dst, strerror(errno));
        goto out;
    }
    if (copy_dir(sfd, dfd, src, user, e) < 0)
        goto out;
    if (fchmod(dfd, st.st_mode & 07777) < 0 ||
        (user && user->switch_user && fchown(dfd, user->uid, user->gid) < 0)) {
        err_internal(e, "copy to %s: %s", dst, strerror(errno));
        goto out;
    }
    ret = 0;
out:
    if (sfd >= 0)
        close(sfd);
    if (dfd >= 0)
        close(dfd);
    return ret;
}

int fs_fsync_dir(const char *path, pf_err *e)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0) {
        int er = errno;
        if (fd >= 0)
            close(fd);
        return err_internal(e, "sync %s: %s", path, strerror(er));
    }
    close(fd);
    return 0;
}

/* syncfs of the file system holding path: a copied tree on disk, all at once */
int fs_sync_fs(const char *path, pf_err *e)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_internal(e, "open %s: %s", path, strerror(errno));
    int rc = syncfs(fd);
    int er = errno;
    close(fd);
    if (rc < 0)
        return err_internal(e, "sync %s: %s", path, strerror(er));
    return 0;
}

static void fsync_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        fs_fsync_dir(dir, NULL);
    }
    free(dir);
}

int proc_kill_matching(const char *program, proc_match_fn match, void *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int stopped = 0;
    while (d && (de = readdir(d)) != NULL) {
        long pid = 0;
        if (!util_parse_int(de->d_name, 1, 1L << 30, &pid) || pid == (long)getpid())
            continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        size_t len = 0;
        char *cmd = fs_read_file(path, &len);
        if (!cmd || !len || !memmem(cmd, len, program, strlen(program))) {
            free(cmd);
            continue;
        }
        const char *argv[256];
        size_t argc = 0;
        for (size_t i = 0; i < len && argc < 256; i += strlen(cmd + i) + 1)
            argv[argc++] = cmd + i;
        bool hit = match(argv, argc, arg);
        free(cmd);
        if (hit) {
            log_warn("stopping a leftover %s pid=%ld", program, pid);
            if (!proc_signal_wait((pid_t)pid, SIGTERM, 5000))
                proc_signal_wait((pid_t)pid, SIGKILL, 5000);
            stopped++;
        }
    }
    if (d)
        closedir(d);
    return stopped;
}

int fs_write_atomic(const char *path, const char *data, size_t len, int mode, const proc_user *user,
                    pf_err *e)
{
    int ret = -1;
    int fd = -1;
    char suffix[17];
    util_secret(suffix, 16);
    char *tmp = xasprintf("%s.tmp-%s", path, suffix);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_internal(e, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err_internal(e, "write %s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, (mode_t)mode) < 0 ||
        (user && user->switch_user && fchown(fd, user->uid, user->gid) < 0) || fsync(fd) < 0) {
        err_internal(e, "write %s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        err_internal(e, "rename %s: %s", path, strerror(errno));
        goto out;
    }
    fsync_parent(path);
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (ret < 0)
        unlink(tmp);
    free(tmp);
    return ret;
}

char *fs_read_file(const char *path, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = xmalloc(cap * 2);
            memcpy(nb, buf, len);
            free(buf);
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            free(buf);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

bool fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}
