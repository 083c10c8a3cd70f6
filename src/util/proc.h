/* proc: spawning child processes from argv arrays (never a shell), optionally as an
 * unprivileged OS user, the one /proc scan for leftover processes, and the filesystem
 * helpers (atomic writes, directory fsync, trees) of every layer.
 * Nothing here calls waitpid(-1): whoever starts a process reaps that pid. */
#ifndef PF_UTIL_PROC_H
#define PF_UTIL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/err.h"

/* The OS identity children run as. When pgfleet is root, this is the unprivileged
 * user (default "postgres"); otherwise it is the current user and no switch happens. */
typedef struct proc_user {
    bool switch_user; /* true when running as root: children setuid/setgid to uid/gid */
    uid_t uid;
    gid_t gid;
    char name[64];
} proc_user;

/* Resolves the identity: as root, looks up `name`; otherwise the current user. */
int proc_user_resolve(const char *name, proc_user *out, pf_err *e);

typedef struct proc_opts {
    const char *const *argv; /* argv[0] is an absolute path; NULL-terminated */
    const char *const *envp; /* NULL: a minimal environment (PATH, LANG=C, TZ=UTC) */
    const proc_user *user;   /* NULL: run as ourselves */
    const char *cwd;         /* NULL: "/" */
    const char *output_path; /* NULL: stdout/stderr to /dev/null; else appended here */
    bool new_session;        /* setsid() so a Ctrl-C to pgfleet's group does not hit it */
} proc_opts;

/* Starts the process and returns its pid (> 0), or -1 with e filled. */
pid_t proc_start(const proc_opts *o, pf_err *e);

/* Runs to completion, capturing up to outsz-1 bytes of stdout+stderr into out (may be
 * NULL). Returns the exit status (>= 0), or -1 if it could not run or was killed by a
 * signal. timeout_ms <= 0 waits forever; on timeout the child is killed and -1 returned. */
int proc_run(const proc_opts *o, char *out, size_t outsz, int timeout_ms, pf_err *e);

/* True if pid exists (kill(pid, 0) succeeds or fails with EPERM). */
bool proc_alive(pid_t pid);

/* Reaps pid if it has exited (non-blocking). Returns true if it is gone. */
bool proc_reap(pid_t pid);

/* Sends sig, then waits up to timeout_ms for the pid to disappear. Returns true if gone. */
bool proc_signal_wait(pid_t pid, int sig, int timeout_ms);

/* Signals every process (not this one) whose command line names `program` (a substring of
 * one of its words) and for which match(argv, argc, arg) is true: SIGTERM, then SIGKILL
 * after 5 s. Returns how many it stopped. For leftovers of a killed pgfleet (pgbackrest,
 * pg_basebackup) that still write where a redone operation will. */
typedef bool (*proc_match_fn)(const char *const *argv, size_t argc, void *arg);
int proc_kill_matching(const char *program, proc_match_fn match, void *arg);

/* fsync of a directory (after a rename or unlink in it). */
int fs_fsync_dir(const char *path, pf_err *e);
/* syncfs of the file system holding path: a copied or initdb'd tree on disk, all at once. */
int fs_sync_fs(const char *path, pf_err *e);

/* mkdir -p with mode; chowns each created directory to user when user->switch_user. */
int fs_mkdirs(const char *path, int mode, const proc_user *user, pf_err *e);

/* rm -rf path (no error if missing). */
int fs_remove_tree(const char *path, pf_err *e);

/* Copies the tree src to dst (dst must not exist), keeping modes, owned by user. */
int fs_copy_tree(const char *src, const char *dst, const proc_user *user, pf_err *e);

/* Writes data to path atomically (write temp, fsync, rename), with mode, owned by user. */
int fs_write_atomic(const char *path, const char *data, size_t len, int mode, const proc_user *user,
                    pf_err *e);

/* Reads a whole small file (NUL-terminated, caller frees); NULL if missing/unreadable. */
char *fs_read_file(const char *path, size_t *len_out);

bool fs_exists(const char *path);

#endif
