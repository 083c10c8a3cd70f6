/* The operator's metrics: GET /metrics in Prometheus' text format (version 0.0.4), served
 * only on --metrics-listen, a listener of its own: the numbers cover every workspace, so no
 * tenant's token reaches them (docs/operations.md lists each metric). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/internal.h"

static void head(FILE *b, const char *name, const char *type, const char *help)
{
    fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int64_t iso_unix(const char *iso)
{
    int64_t ms = 0;
    return iso && iso[0] && util_iso_parse(iso, &ms) ? ms / 1000 : -1;
}

static int64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f)
        return 0;
    int got = fscanf(f, "%ld %ld", &pages, &resident);
    fclose(f);
    return got == 2 ? (int64_t)resident * sysconf(_SC_PAGESIZE) : 0;
}

/* Sleep and wake, and the data path's connections per database. */
static void datapath_metrics(FILE *b, const ops_dp_stats *ds)
{
    head(b, "pgfleet_databases_awake", "gauge", "Databases whose server runs (data path view).");
    fprintf(b, "pgfleet_databases_awake %lld\n", (long long)ds->awake);
    head(b, "pgfleet_databases_asleep", "gauge",
         "Databases asleep: no server process; the next connection wakes them.");
    fprintf(b, "pgfleet_databases_asleep %lld\n", (long long)ds->asleep);
    head(b, "pgfleet_wakes_total", "counter", "Sleeping databases woken since start.");
    fprintf(b, "pgfleet_wakes_total %llu\n", (unsigned long long)ds->wakes);
    head(b, "pgfleet_wake_failures_total", "counter", "Wakes whose server did not start.");
    fprintf(b, "pgfleet_wake_failures_total %llu\n", (unsigned long long)ds->wake_failures);
    head(b, "pgfleet_sleeps_total", "counter", "Idle databases put to sleep since start.");
    fprintf(b, "pgfleet_sleeps_total %llu\n", (unsigned long long)ds->sleeps);
    head(b, "pgfleet_wake_seconds", "histogram", "Time from a wake request to a ready server.");
    uint64_t cum = 0;
    for (int k = 0; k < OPS_WAKE_BUCKETS; k++) {
        cum += ds->wake_hist[k];
        fprintf(b, "pgfleet_wake_seconds_bucket{le=\"%.3f\"} %llu\n",
                ops_wake_buckets_ms[k] / 1000.0, (unsigned long long)cum);
    }
    cum += ds->wake_hist[OPS_WAKE_BUCKETS];
    fprintf(b, "pgfleet_wake_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    fprintf(b, "pgfleet_wake_seconds_sum %.3f\n", (double)ds->wake_ms_sum / 1000.0);
    fprintf(b, "pgfleet_wake_seconds_count %llu\n", (unsigned long long)ds->wakes);
    head(b, "pgfleet_database_connections", "gauge",
         "Connections through the data path by database: direct clients, and PgBouncer's "
         "server connections (pooled).");
    for (size_t i = 0; i < ds->n; i++)
        fprintf(b,
                "pgfleet_database_connections{database=\"%s\",endpoint=\"direct\"} %d\n"
                "pgfleet_database_connections{database=\"%s\",endpoint=\"pooled\"} %d\n",
                ds->dbs[i].id, ds->dbs[i].direct, ds->dbs[i].id, ds->dbs[i].pooled);
}

static const char *const outcomes[OPS_STAT__COUNT] = {"done", "failed", "retried"};

HANDLER(h_metrics)
{
    (void)req;
    app *a = ctx;
    store_stats ss;
    if (store_stats_get(a->st, &ss, e) != 0)
        return -1;

    store_last_backup *lb = NULL;
    size_t nlb = 0;
    if (store_stats_last_backups(a->st, &lb, &nlb, e) != 0)
        return -1;
    char *text = NULL;
    size_t len = 0;
    FILE *b = open_memstream(&text, &len);
    if (!b) {
        free(lb);
        return err_internal(e, "metrics: no memory");
    }

    head(b, "pgfleet_build_info", "gauge", "The running pgfleet.");
    fprintf(b, "pgfleet_build_info{version=\"%s\"} 1\n", a->version);
    head(b, "pgfleet_start_time_seconds", "gauge", "When this pgfleet started (unix time).");
    fprintf(b, "pgfleet_start_time_seconds %lld\n", (long long)(a->started_ms / 1000));
    head(b, "pgfleet_resident_memory_bytes", "gauge", "Resident memory of the pgfleet process.");
    fprintf(b, "pgfleet_resident_memory_bytes %lld\n", (long long)rss_bytes());
    /* what the resident memory holds: live heap, heap freed but kept by malloc, SQLite's
     * (not in a sanitizer build: its malloc is not glibc's, mallinfo2 would say 0) */
#ifndef __SANITIZE_ADDRESS__
    struct mallinfo2 mi = mallinfo2();
    head(b, "pgfleet_heap_bytes", "gauge",
         "malloc's heap: in use, and free but kept (mmapped blocks counted as in use).");
    fprintf(b, "pgfleet_heap_bytes{state=\"in_use\"} %zu\npgfleet_heap_bytes{state=\"free\"} %zu\n",
            mi.uordblks + mi.hblkhd, mi.fordblks);
#endif
    head(b, "pgfleet_catalog_memory_bytes", "gauge",
         "Memory SQLite holds: the page caches of every thread's catalog connection, statements.");
    fprintf(b, "pgfleet_catalog_memory_bytes %lld\n", (long long)store_memory_used());
    textcache_counts tc;
    textcache_stats(a->items, &tc);
    head(b, "pgfleet_list_items_kept", "gauge",
         "Databases whose list item text is kept (pages copy it while the row is unchanged).");
    fprintf(b, "pgfleet_list_items_kept %zu\n", tc.texts);
    head(b, "pgfleet_list_items_kept_bytes", "gauge", "Memory the kept list items take.");
    fprintf(b, "pgfleet_list_items_kept_bytes %zu\n", tc.bytes);
    head(b, "pgfleet_list_items_total", "counter",
         "List items answered: copied from the kept text (kept) or read and written (made).");
    fprintf(b, "pgfleet_list_items_total{source=\"kept\"} %llu\n", (unsigned long long)tc.hits);
    fprintf(b, "pgfleet_list_items_total{source=\"made\"} %llu\n", (unsigned long long)tc.misses);

    head(b, "pgfleet_databases", "gauge", "Databases in the catalog by status.");
    for (int i = 0; i < STORE_DB_STATUS_COUNT; i++)
        fprintf(b, "pgfleet_databases{status=\"%s\"} %lld\n",
                store_db_status_name((store_db_status)i), (long long)ss.databases[i]);

    if (a->ops) {
        ops_stats os;
        ops_stats_get(a->ops, &os);
        head(b, "pgfleet_servers", "gauge",
             "PostgreSQL servers of ready databases: running (up) or not (down).");
        fprintf(b, "pgfleet_servers{state=\"up\"} %lld\npgfleet_servers{state=\"down\"} %lld\n",
                (long long)os.servers_up, (long long)os.servers_down);
        head(b, "pgfleet_databases_unhealthy", "gauge",
             "Databases whose server is restarted with a backoff: it stopped too often or does "
             "not start (the reason: pgfleet status).");
        fprintf(b, "pgfleet_databases_unhealthy %lld\n", (long long)os.unhealthy);
        head(b, "pgfleet_spares_ready", "gauge",
             "Started servers waiting for a database (--spares): a create takes one.");
        fprintf(b, "pgfleet_spares_ready %d\n", os.spares_ready);
        head(b, "pgfleet_spares_taken_total", "counter", "Creates that took a started spare.");
        fprintf(b, "pgfleet_spares_taken_total %llu\n", (unsigned long long)os.spares_taken);
        if (os.pooler >= 0) {
            head(b, "pgfleet_pooler_up", "gauge", "1 when PgBouncer runs.");
            fprintf(b, "pgfleet_pooler_up %d\n", os.pooler);
            head(b, "pgfleet_pooler_reloads_total", "counter",
                 "RELOADs sent to PgBouncer (changes close together share one).");
            fprintf(b, "pgfleet_pooler_reloads_total %llu\n",
                    (unsigned long long)os.pooler_reloads);
        }
        head(b, "pgfleet_usage_pass_seconds", "gauge",
             "Duration of the usage sampler's last pass over every ready database.");
        fprintf(b, "pgfleet_usage_pass_seconds %.3f\n", (double)os.usage_pass_ms / 1000.0);
        head(b, "pgfleet_usage_pass_databases", "gauge", "Databases that last pass sampled.");
        fprintf(b, "pgfleet_usage_pass_databases %lld\n", (long long)os.usage_pass_dbs);
        ops_dp_stats ds;
        ops_datapath_stats(a->ops, &ds);
        if (ds.enabled)
            datapath_metrics(b, &ds);
        free(ds.dbs);
        head(b, "pgfleet_op_attempts_total", "counter",
             "Op attempts since start by kind and outcome (done, failed for good, retried).");
        for (int k = 0; k < OP__COUNT; k++)
            for (int r = 0; r < OPS_STAT__COUNT; r++)
                fprintf(b, "pgfleet_op_attempts_total{kind=\"%s\",outcome=\"%s\"} %llu\n",
                        store_op_kind_name((store_op_kind)k), outcomes[r],
                        (unsigned long long)os.ended[k][r]);
        head(b, "pgfleet_op_seconds_total", "counter", "Time op attempts took, by kind.");
        for (int k = 0; k < OP__COUNT; k++)
            fprintf(b, "pgfleet_op_seconds_total{kind=\"%s\"} %.3f\n",
                    store_op_kind_name((store_op_kind)k), (double)os.ms_sum[k] / 1000.0);
    }
    head(b, "pgfleet_ops_queued", "gauge", "Ops not finished, by kind and state.");
    for (int k = 0; k < OP__COUNT; k++)
        for (int st = 0; st < 2; st++)
            fprintf(b, "pgfleet_ops_queued{kind=\"%s\",state=\"%s\"} %lld\n",
                    store_op_kind_name((store_op_kind)k), st == 0 ? "pending" : "running",
                    (long long)ss.ops[k][st]);

    head(b, "pgfleet_database_last_backup_time_seconds", "gauge",
         "End of each database's last completed backup (unix time; 0: none yet).");
    for (size_t i = 0; i < nlb; i++) {
        int64_t t = iso_unix(lb[i].stopped_at);
        fprintf(b, "pgfleet_database_last_backup_time_seconds{database=\"%s\"} %lld\n",
                lb[i].database_id, (long long)(t > 0 ? t : 0));
    }
    free(lb);

    if (a->api_server) {
        http_stats hs;
        http_stats_get(a->api_server, &hs);
        head(b, "pgfleet_http_requests_total", "counter",
             "API requests answered since start, by status class.");
        for (int c = 1; c <= 5; c++)
            fprintf(b, "pgfleet_http_requests_total{code=\"%dxx\"} %llu\n", c,
                    (unsigned long long)hs.by_class[c]);
        head(b, "pgfleet_http_request_duration_seconds", "histogram",
             "Time to answer API requests.");
        for (int i = 0; i < HTTP_LAT_BUCKETS; i++)
            fprintf(b, "pgfleet_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                    http_latency_bounds_ms[i] / 1000.0, (unsigned long long)hs.le[i]);
        fprintf(b,
                "pgfleet_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                "pgfleet_http_request_duration_seconds_sum %.3f\n"
                "pgfleet_http_request_duration_seconds_count %llu\n",
                (unsigned long long)hs.count, (double)hs.ms_sum / 1000.0,
                (unsigned long long)hs.count);
    }
    if (fclose(b) != 0) {
        free(text);
        return err_internal(e, "metrics: no memory");
    }
    resp->raw = text;
    resp->raw_len = len;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 0;
}

static const http_route metrics_routes[] = {
    {"GET", "/metrics", h_metrics, HTTP_PUBLIC},
};

const http_route *api_metrics_routes(size_t *n)
{
    *n = sizeof metrics_routes / sizeof metrics_routes[0];
    return metrics_routes;
}
