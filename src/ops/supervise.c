/* Restart intensity of supervised processes (each database's server, PgBouncer), as
 * pg_autoctl's supervisor has: a process restarts at once up to OPS_RESTART_INTENSITY times
 * in OPS_RESTART_PERIOD_MS; past that, each restart waits a backoff that doubles from
 * OPS_BACKOFF_MIN_MS to OPS_BACKOFF_MAX_MS. A process seen running a whole period after
 * its last restart starts afresh (its record is forgotten).
 * The records live in memory (a restart of pgfleet starts them afresh) and belong to the
 * reconciler thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_int.h"

int ops__restarts_recent(const ops_restarts *r, int64_t now_ms)
{
    int n = 0;
    for (int i = 0; i < OPS_RESTART_INTENSITY; i++)
        if (r->at[i] > 0 && now_ms - r->at[i] < OPS_RESTART_PERIOD_MS)
            n++;
    return n;
}

static int64_t last_restart(const ops_restarts *r)
{
    int64_t last = 0;
    for (int i = 0; i < OPS_RESTART_INTENSITY; i++)
        if (r->at[i] > last)
            last = r->at[i];
    return last;
}

bool ops__restart_allowed(ops_restarts *r, int64_t now_ms, int64_t *wait_ms)
{
    *wait_ms = 0;
    if (r->backoff_ms == 0) {
        if (ops__restarts_recent(r, now_ms) >= OPS_RESTART_INTENSITY) {
            /* the first restart past the intensity: the backoff begins */
            r->backoff_ms = OPS_BACKOFF_MIN_MS;
            r->not_before_ms = now_ms + r->backoff_ms;
            *wait_ms = r->backoff_ms;
            return false;
        }
    } else if (now_ms < r->not_before_ms) {
        *wait_ms = r->not_before_ms - now_ms;
        return false;
    } else {
        /* this restart is allowed; the next one waits twice as long */
        r->backoff_ms =
            r->backoff_ms * 2 > OPS_BACKOFF_MAX_MS ? OPS_BACKOFF_MAX_MS : r->backoff_ms * 2;
        r->not_before_ms = now_ms + r->backoff_ms;
    }
    /* 0 marks an empty slot */
    r->at[r->next] = now_ms > 0 ? now_ms : 1;
    r->next = (r->next + 1) % OPS_RESTART_INTENSITY;
    return true;
}

bool ops__restarts_settled(const ops_restarts *r, int64_t now_ms)
{
    return now_ms - last_restart(r) >= OPS_RESTART_PERIOD_MS;
}

void ops__running(ops *o, const char *id)
{
    for (size_t i = 0; i < o->nrestarts; i++)
        if (strcmp(o->restarts[i].id, id) == 0) {
            if (ops__restarts_settled(&o->restarts[i], ops__now_ms(o)))
                o->restarts[i] = o->restarts[--o->nrestarts];
            return;
        }
}

ops_restarts *ops__restarts_of(ops *o, const char *id)
{
    for (size_t i = 0; i < o->nrestarts; i++)
        if (strcmp(o->restarts[i].id, id) == 0)
            return &o->restarts[i];
    util_grow((void **)&o->restarts, &o->caprestarts, o->nrestarts + 1, sizeof *o->restarts);
    ops_restarts *r = &o->restarts[o->nrestarts++];
    memset(r, 0, sizeof *r);
    snprintf(r->id, sizeof r->id, "%s", id);
    return r;
}

void ops__restarts_forget(ops *o, const char *id)
{
    for (size_t i = 0; i < o->nrestarts; i++)
        if (strcmp(o->restarts[i].id, id) == 0) {
            o->restarts[i] = o->restarts[--o->nrestarts];
            return;
        }
}
