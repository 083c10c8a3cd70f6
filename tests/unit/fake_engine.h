/* A fake of the engine (src/engine/engine.h) for the ops unit tests: instances, roles,
 * backups and the pooler are a few arrays in memory, so an op runs in microseconds. Each
 * call can be made to fail with an error kind, calls are counted, and a "crash" can be set
 * at the k-th step (a call that changes something), which then fails without effect. The
 * state outlives the failure, as files and servers outlive a crash of pgfleet. */
#ifndef PF_TESTS_FAKE_ENGINE_H
#define PF_TESTS_FAKE_ENGINE_H

#include <stdbool.h>

#include "engine/engine.h"

typedef enum {
    FAKE_INSTANCE_CREATE = 0,
    FAKE_INSTANCE_START,
    FAKE_INSTANCE_DESTROY,
    FAKE_ROLE_ENSURE,
    FAKE_ROLE_DROP,
    FAKE_BACKUP_RUN,
    FAKE_BACKUP_EXPIRE,
    FAKE_BACKUP_REMOVE,
    FAKE_BACKUP_STOP,
    FAKE_BACKUP_LIST,
    FAKE_BACKUP_FLUSH_WAL,
    FAKE_RESTORE,
    FAKE_POOLER_APPLY,
    FAKE_POOLER_ENSURE,
    FAKE_WRITE_MARK,
    FAKE_USAGE_SAMPLE,
    FAKE__COUNT
} fake_call;

engine *fake_engine_new(bool pooler);
void fake_engine_free(engine *en);

/* The next `times` calls of c fail with kind (times < 0: every call until cleared with 0). */
void fake_fail(engine *en, fake_call c, pf_err_kind kind, int times);
/* The same with the error's code (e.g. "DiskFull"; fake_fail's is "Fake"). */
void fake_fail_code(engine *en, fake_call c, pf_err_kind kind, const char *code, int times);
/* Calls of c so far (failed ones included). */
int fake_calls(engine *en, fake_call c);
/* Steps (calls that change something) so far; with fake_crash_at(k) the k-th step from the
 * start fails ("crash") and later ones succeed (0: no crash). */
int fake_steps(engine *en);
void fake_crash_at(engine *en, int step);

/* The server of db_id dies (its files stay). */
void fake_kill(engine *en, const char *db_id);
/* The roles of db_id's server, "role=verifier" lines sorted; "" when none. Caller frees. */
char *fake_roles(engine *en, const char *db_id);
/* The stanza's backups in the fake repository. */
int fake_backups(engine *en, const char *db_id);
/* What PgBouncer was last given: database ids and roles sorted, "db,db|role,role". */
char *fake_pooled(engine *en);
int fake_pooler_applies(engine *en);
/* Makes the restore of db_id stop after it began to overwrite (engine_restore_overwriting). */
void fake_set_overwriting(engine *en, const char *db_id, bool on);
/* The next call of c (FAKE_ROLE_ENSURE, FAKE_ROLE_DROP) finds its server stopped. */
void fake_stop_before(engine *en, fake_call c);
/* PgBouncer dies. */
void fake_pooler_kill(engine *en);

#endif
