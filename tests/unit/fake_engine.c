/* The fake engine of tests/unit/fake_engine.h: every function of engine.h that ops calls. */
#include "fake_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

#define FAKE_MAX 32

typedef struct fake_role {
    char role[64];
    char verifier[256];
} fake_role;

typedef struct fake_inst {
    char id[PF_ID_MAX];
    bool exists, running, overwriting, asleep;
    int port;
    fake_role roles[FAKE_MAX];
    int nroles;
    engine_backup backups[FAKE_MAX];
    int nbackups;
    char restored[PF_ID_MAX]; /* the token of the last restore swapped in */
} fake_inst;

struct engine {
    fake_inst inst[FAKE_MAX];
    int ninst;
    int calls[FAKE__COUNT];
    int fail_times[FAKE__COUNT];
    pf_err_kind fail_kind[FAKE__COUNT];
    char fail_code[FAKE__COUNT][32];
    int steps, crash_at;
    int stop_before; /* a fake_call + 1, or 0 */
    bool pooler, pooler_running;
    char pooled[4096];
    int applies;
    int64_t clock_s;
};

engine *fake_engine_new(bool pooler)
{
    engine *en = xcalloc(1, sizeof *en);
    en->pooler = pooler;
    en->clock_s = 1700000000;
    return en;
}

void fake_engine_free(engine *en)
{
    free(en);
}

void fake_fail(engine *en, fake_call c, pf_err_kind kind, int times)
{
    fake_fail_code(en, c, kind, "Fake", times);
}

void fake_fail_code(engine *en, fake_call c, pf_err_kind kind, const char *code, int times)
{
    en->fail_kind[c] = kind;
    en->fail_times[c] = times;
    snprintf(en->fail_code[c], sizeof en->fail_code[c], "%s", code);
}

int fake_calls(engine *en, fake_call c)
{
    return en->calls[c];
}

int fake_steps(engine *en)
{
    return en->steps;
}

void fake_crash_at(engine *en, int step)
{
    en->crash_at = step;
}

/* Counts a call of c; -1 with e filled when it is to fail. A step (step true) may be the
 * crash. */
static int enter(engine *en, fake_call c, bool step, pf_err *e)
{
    en->calls[c]++;
    if (en->fail_times[c] != 0) {
        if (en->fail_times[c] > 0)
            en->fail_times[c]--;
        return err_kind(e, en->fail_kind[c], en->fail_code[c], "fake failure of call %d", (int)c);
    }
    if (step && ++en->steps == en->crash_at)
        return err_kind(e, ERR_INTERNAL, "Crash", "simulated crash at step %d", en->steps);
    return 0;
}

static fake_inst *find(engine *en, const char *id, bool make)
{
    for (int i = 0; i < en->ninst; i++)
        if (strcmp(en->inst[i].id, id) == 0)
            return &en->inst[i];
    if (!make || en->ninst == FAKE_MAX)
        return NULL;
    fake_inst *in = &en->inst[en->ninst++];
    memset(in, 0, sizeof *in);
    snprintf(in->id, sizeof in->id, "%s", id);
    return in;
}

void fake_kill(engine *en, const char *db_id)
{
    fake_inst *in = find(en, db_id, false);
    if (in)
        in->running = false;
}

void fake_stop_before(engine *en, fake_call c)
{
    en->stop_before = (int)c + 1;
}

/* The server of in stops now if fake_stop_before named call c. */
static void maybe_stop(engine *en, fake_inst *in, fake_call c)
{
    if (in && en->stop_before == (int)c + 1) {
        in->running = false;
        en->stop_before = 0;
    }
}

void fake_pooler_kill(engine *en)
{
    en->pooler_running = false;
}

void fake_set_overwriting(engine *en, const char *db_id, bool on)
{
    fake_inst *in = find(en, db_id, true);
    in->overwriting = on;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *fake_roles(engine *en, const char *db_id)
{
    fake_inst *in = find(en, db_id, false);
    util_buf b = {0};
    util_buf_puts(&b, "");
    if (!in)
        return util_buf_take(&b);
    char *lines[FAKE_MAX];
    for (int i = 0; i < in->nroles; i++)
        lines[i] = xasprintf("%s=%s", in->roles[i].role, in->roles[i].verifier);
    qsort(lines, (size_t)in->nroles, sizeof lines[0], cmp_str);
    for (int i = 0; i < in->nroles; i++) {
        util_buf_printf(&b, "%s%s", i ? "\n" : "", lines[i]);
        free(lines[i]);
    }
    return util_buf_take(&b);
}

int fake_backups(engine *en, const char *db_id)
{
    fake_inst *in = find(en, db_id, false);
    return in ? in->nbackups : 0;
}

char *fake_pooled(engine *en)
{
    return xstrdup(en->pooled);
}

int fake_pooler_applies(engine *en)
{
    return en->applies;
}

/* ---- instances ---- */

int engine_instance_create(engine *en, const char *db_id, int port, pf_err *e)
{
    if (enter(en, FAKE_INSTANCE_CREATE, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, true);
    in->exists = true;
    in->port = port;
    return 0;
}

int engine_instance_start(engine *en, const char *db_id, int port, int timeout_ms, pf_err *e)
{
    (void)timeout_ms;
    if (enter(en, FAKE_INSTANCE_START, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    if (!in || !in->exists)
        return err_kind(e, ERR_CONFLICT, NULL, "no data directory for %s", db_id);
    if (in->overwriting)
        return err_kind(e, ERR_CONFLICT, NULL, "%s is being overwritten", db_id);
    in->port = port;
    in->running = true;
    in->asleep = false;
    return 0;
}

int engine_instance_destroy(engine *en, const char *db_id, pf_err *e)
{
    if (enter(en, FAKE_INSTANCE_DESTROY, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    if (in) {
        int nb = in->nbackups; /* the repository is not the instance's directory */
        engine_backup keep[FAKE_MAX];
        memcpy(keep, in->backups, sizeof keep);
        char id[PF_ID_MAX];
        snprintf(id, sizeof id, "%s", in->id);
        memset(in, 0, sizeof *in);
        snprintf(in->id, sizeof in->id, "%s", id);
        memcpy(in->backups, keep, sizeof keep);
        in->nbackups = nb;
    }
    return 0;
}

bool engine_instance_running(engine *en, const char *db_id)
{
    fake_inst *in = find(en, db_id, false);
    return in && in->running;
}

bool engine_instance_exists(engine *en, const char *db_id)
{
    fake_inst *in = find(en, db_id, false);
    return in && in->exists;
}

int engine_instance_list(engine *en, char ***ids, size_t *n, pf_err *e)
{
    (void)e;
    *ids = xcalloc(FAKE_MAX, sizeof **ids);
    *n = 0;
    for (int i = 0; i < en->ninst; i++)
        if (en->inst[i].exists)
            (*ids)[(*n)++] = xstrdup(en->inst[i].id);
    return 0;
}

void engine_free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

bool engine_instance_adopt(engine *en, const char *db_id)
{
    return engine_instance_running(en, db_id);
}

int engine_instance_alias(engine *en, const char *id, const char *alias, pf_err *e)
{
    (void)en;
    (void)id;
    (void)alias;
    (void)e;
    return 0;
}

int engine_instance_unalias(engine *en, const char *alias, pf_err *e)
{
    (void)en;
    (void)alias;
    (void)e;
    return 0;
}

/* no spares: every create makes its instance */
int engine_spare_make(engine *en, bool (*stop)(void *), void *arg, char *id_out, size_t idsz,
                      pf_err *e)
{
    (void)en;
    (void)stop;
    (void)arg;
    (void)id_out;
    (void)idsz;
    return err_internal(e, "the fake engine makes no spares");
}

bool engine_spare_take(engine *en, char *id, size_t idsz)
{
    (void)en;
    (void)id;
    (void)idsz;
    return false;
}

void engine_spares_stats(engine *en, int *ready, uint64_t *taken)
{
    (void)en;
    if (ready)
        *ready = 0;
    if (taken)
        *taken = 0;
}

int engine_spares_adopt(engine *en, int keep, pf_err *e)
{
    (void)en;
    (void)keep;
    (void)e;
    return 0;
}

int engine_spares_trim(engine *en, int keep)
{
    (void)en;
    (void)keep;
    return 0;
}

/* ---- roles ---- */

int engine_role_ensure(engine *en, const char *db_id, const char *role, const char *verifier,
                       pf_err *e)
{
    if (enter(en, FAKE_ROLE_ENSURE, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    maybe_stop(en, in, FAKE_ROLE_ENSURE);
    if (!in || !in->running) /* as the engine answers */
        return err_kind(e, ERR_CONFLICT, "NotRunning", "the server of %s is not running", db_id);
    for (int i = 0; i < in->nroles; i++)
        if (strcmp(in->roles[i].role, role) == 0) {
            snprintf(in->roles[i].verifier, sizeof in->roles[i].verifier, "%s", verifier);
            return 0;
        }
    fake_role *r = &in->roles[in->nroles++];
    snprintf(r->role, sizeof r->role, "%s", role);
    snprintf(r->verifier, sizeof r->verifier, "%s", verifier);
    return 0;
}

int engine_role_drop(engine *en, const char *db_id, const char *role, pf_err *e)
{
    if (enter(en, FAKE_ROLE_DROP, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    maybe_stop(en, in, FAKE_ROLE_DROP);
    if (!in)
        return 0;
    if (!in->running)
        return err_kind(e, ERR_CONFLICT, "NotRunning", "the server of %s is not running", db_id);
    for (int i = 0; i < in->nroles; i++)
        if (strcmp(in->roles[i].role, role) == 0) {
            in->roles[i] = in->roles[--in->nroles];
            break;
        }
    return 0;
}

/* ---- backups and restore ---- */

int engine_backup_run(engine *en, const char *db_id, int port, engine_backup_type type,
                      bool online, engine_backup *out, pf_err *e)
{
    (void)port;
    if (enter(en, FAKE_BACKUP_RUN, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    if (!in || in->running != online)
        return err_kind(e, ERR_TRANSIENT, NULL, "the server of %s is %s", db_id,
                        online ? "not running" : "running (offline backup)");
    memset(out, 0, sizeof *out);
    int64_t t = en->clock_s++;
    snprintf(out->label, sizeof out->label, "%lld%c", (long long)t,
             type == ENGINE_BACKUP_FULL   ? 'F'
             : type == ENGINE_BACKUP_DIFF ? 'D'
                                          : 'I');
    out->type = type;
    out->size = 1000;
    out->start = t;
    out->stop = t;
    in->backups[in->nbackups++] = *out;
    return 0;
}

int engine_backup_list(engine *en, const char *db_id, engine_backup **out, size_t *n, pf_err *e)
{
    if (enter(en, FAKE_BACKUP_LIST, false, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    *n = in ? (size_t)in->nbackups : 0;
    *out = xcalloc(*n ? *n : 1, sizeof **out);
    if (*n)
        memcpy(*out, in->backups, *n * sizeof **out);
    return 0;
}

int engine_backup_expire(engine *en, const char *db_id, pf_err *e)
{
    (void)db_id;
    return enter(en, FAKE_BACKUP_EXPIRE, true, e);
}

int engine_backup_stop(engine *en, const char *db_id, pf_err *e)
{
    (void)db_id;
    return enter(en, FAKE_BACKUP_STOP, true, e);
}

/* the fake's backups run no process: a stop has nothing to interrupt */
void engine_backups_interrupt(engine *en)
{
    (void)en;
}

int engine_backup_remove(engine *en, const char *db_id, pf_err *e)
{
    if (enter(en, FAKE_BACKUP_REMOVE, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, false);
    if (in)
        in->nbackups = 0;
    return 0;
}

int engine_backup_flush_wal(engine *en, const char *db_id, int port, pf_err *e)
{
    (void)db_id;
    (void)port;
    return enter(en, FAKE_BACKUP_FLUSH_WAL, true, e);
}

int engine_write_mark(engine *en, const char *db_id, char out[32], pf_err *e)
{
    if (enter(en, FAKE_WRITE_MARK, false, e) != 0)
        return -1;
    snprintf(out, 32, "mark-%s", db_id);
    return 0;
}

int engine_usage_sample(engine *en, const char *db_id, int64_t *xacts, int64_t *bytes, pf_err *e)
{
    if (enter(en, FAKE_USAGE_SAMPLE, false, e) != 0)
        return -1;
    if (!engine_instance_running(en, db_id))
        return err_kind(e, ERR_CONFLICT, NULL, "not running");
    *xacts = 10;
    *bytes = 1 << 20;
    return 0;
}

int engine_restore(engine *en, const char *db_id, const engine_restore_spec *spec, pf_err *e)
{
    if (enter(en, FAKE_RESTORE, true, e) != 0)
        return -1;
    fake_inst *in = find(en, db_id, true);
    if (strcmp(in->restored, spec->token) == 0)
        return 0; /* swapped in already */
    fake_inst *src = find(en, spec->source_id, false);
    if (!src)
        return err_kind(e, ERR_NOT_FOUND, NULL, "no source %s", spec->source_id);
    in->running = false; /* the new data replaces the old: its server restarts */
    in->exists = true;
    in->overwriting = false;
    in->nroles = 0;
    for (size_t i = 0; i < spec->nroles; i++) {
        fake_role *r = &in->roles[in->nroles++];
        snprintf(r->role, sizeof r->role, "%s", spec->roles[i].role);
        snprintf(r->verifier, sizeof r->verifier, "%s", spec->roles[i].verifier);
    }
    snprintf(in->restored, sizeof in->restored, "%s", spec->token);
    return 0;
}

bool engine_restore_overwriting(engine *en, const char *db_id)
{
    fake_inst *in = find(en, db_id, false);
    return in && in->overwriting;
}

void engine_restore_cleanup(engine *en, const char *db_id)
{
    (void)en;
    (void)db_id;
}

/* ---- pooler ---- */

uint64_t engine_pooler_reloads(engine *en)
{
    return (uint64_t)en->applies;
}

bool engine_pooler_enabled(engine *en)
{
    return en->pooler;
}

int engine_pooler_apply(engine *en, const engine_pool_db *dbs, size_t ndbs,
                        const engine_pool_user *users, size_t nusers, pf_err *e)
{
    if (enter(en, FAKE_POOLER_APPLY, true, e) != 0)
        return -1;
    char **names = xcalloc(ndbs + nusers + 1, sizeof *names);
    for (size_t i = 0; i < ndbs; i++)
        names[i] = xstrdup(dbs[i].id);
    for (size_t i = 0; i < nusers; i++)
        names[ndbs + i] = xstrdup(users[i].role);
    qsort(names, ndbs, sizeof *names, cmp_str);
    qsort(names + ndbs, nusers, sizeof *names, cmp_str);
    util_buf b = {0};
    util_buf_puts(&b, "");
    for (size_t i = 0; i < ndbs + nusers; i++) {
        if (i == ndbs)
            util_buf_puts(&b, "|");
        else if (i)
            util_buf_puts(&b, ",");
        util_buf_puts(&b, names[i]);
        free(names[i]);
    }
    if (nusers == 0)
        util_buf_puts(&b, "|");
    free(names);
    char *s = util_buf_take(&b);
    snprintf(en->pooled, sizeof en->pooled, "%s", s);
    free(s);
    en->applies++;
    return 0;
}

int engine_pooler_ensure(engine *en, int timeout_ms, pf_err *e)
{
    (void)timeout_ms;
    if (enter(en, FAKE_POOLER_ENSURE, true, e) != 0)
        return -1;
    en->pooler_running = true;
    return 0;
}

bool engine_pooler_running(engine *en)
{
    return en->pooler_running;
}

/* ---- sleep (the fake sleeps: its server stops and it is marked asleep) ---- */

void engine_instance_endpoint(engine *en, const char *db_id, int port, char *sock, size_t nsock,
                              char *pidfile, size_t npid)
{
    (void)en;
    snprintf(sock, nsock, "/nonexistent/%s/.s.PGSQL.%d", db_id, port);
    snprintf(pidfile, npid, "/nonexistent/%s/postmaster.pid", db_id);
}

void engine_tls_files(engine *en, const char **cert, const char **key, bool *loopback_optional)
{
    (void)en;
    *cert = *key = NULL;
    *loopback_optional = false;
}

int engine_instance_suspend(engine *en, const char *db_id, int port, pf_err *e)
{
    (void)port;
    fake_inst *in = find(en, db_id, false);
    if (!in || !in->running)
        return err_kind(e, ERR_CONFLICT, "NotRunning", "not running");
    in->running = false;
    in->asleep = true;
    return 0;
}

bool engine_instance_asleep(engine *en, const char *db_id, char *mark)
{
    fake_inst *in = find(en, db_id, false);
    if (mark)
        mark[0] = '\0';
    return in && in->asleep && !in->running;
}

int engine_pooler_active(engine *en, const char *db_id, int *active, pf_err *e)
{
    (void)en, (void)db_id, (void)e;
    *active = 0;
    return 0;
}

int engine_pooler_pause(engine *en, const char *db_id, int timeout_ms, pf_err *e)
{
    (void)en, (void)db_id, (void)timeout_ms, (void)e;
    return 0;
}

int engine_pooler_resume(engine *en, const char *db_id, pf_err *e)
{
    (void)en, (void)db_id, (void)e;
    return 0;
}
