/* pgfleet_limits: pgfleet's own PostgreSQL server module, preloaded in every database
 * server (shared_preload_libraries). It caps the databases a server's users make: a
 * CREATE DATABASE by a role that is not a superuser fails with SQLSTATE 53400
 * (configuration_limit_exceeded) once the server holds pgfleet_limits.databases_per_server
 * databases owned by roles that are not superusers. The server's own databases (postgres,
 * template1; template0 where it exists) belong to the bootstrap superuser, pgfleet's admin
 * role, and never count; a database a user makes belongs to the owner role or a login role.
 *
 * Creates are serialised: each takes one server-wide lock, held to the end of its
 * transaction (CREATE DATABASE cannot run in a transaction block, so to its commit), and
 * counts with a fresh catalog snapshot after taking it, so two sessions cannot both pass
 * at one below the limit. The limit is reloadable (SIGHUP); lowering it below what a server
 * holds drops nothing, it refuses creates until enough are dropped. */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/* the second key of the lock; its first is database 0, which no advisory lock of a
 * session has (theirs carry their database's oid), so no user lock meets it */
#define LIMITS_LOCK_KEY 0x70676664 /* "pgfd" */

static int databases_per_server = 16;
static ProcessUtility_hook_type prev_utility = NULL;

/* Databases owned by a role that is not a superuser. */
static int user_databases(void)
{
    Relation rel = table_open(DatabaseRelationId, AccessShareLock);
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
    HeapTuple tup;
    int n = 0;

    while (HeapTupleIsValid(tup = systable_getnext(scan)))
        if (!superuser_arg(((Form_pg_database)GETSTRUCT(tup))->datdba))
            n++;
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return n;
}

static void check_create(void)
{
    LOCKTAG tag;
    int n;

    SET_LOCKTAG_ADVISORY(tag, InvalidOid, LIMITS_LOCK_KEY, 0, 2);
    (void)LockAcquire(&tag, ExclusiveLock, false, false);
    /* what the create before us committed while we waited */
    InvalidateCatalogSnapshot();
    n = user_databases();
    if (n >= databases_per_server)
        ereport(ERROR,
                (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                 errmsg("too many databases: this server allows %d made with CREATE DATABASE",
                        databases_per_server),
                 errdetail("It holds %d beside its own postgres database.", n),
                 errhint("Drop a database you no longer need (DROP DATABASE), or ask the "
                         "operator for a higher --databases-per-server.")));
}

static void limits_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree,
                           ProcessUtilityContext context, ParamListInfo params,
                           QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    if (IsA(pstmt->utilityStmt, CreatedbStmt) && !superuser())
        check_create();
    if (prev_utility)
        prev_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
}

void _PG_init(void)
{
    /* a hook in one session only would be no limit: preloaded or nothing */
    if (!process_shared_preload_libraries_in_progress)
        ereport(ERROR, (errmsg("pgfleet_limits must be loaded with shared_preload_libraries")));
    DefineCustomIntVariable("pgfleet_limits.databases_per_server",
                            "Databases the server's users may make with CREATE DATABASE.", NULL,
                            &databases_per_server, 16, 0, 100000, PGC_SIGHUP, 0, NULL, NULL, NULL);
    MarkGUCPrefixReserved("pgfleet_limits");
    prev_utility = ProcessUtility_hook;
    ProcessUtility_hook = limits_utility;
}
