/* Usage: GET /v1/databases/{databaseId}/usage. The ops usage sampler records, per database
 * and UTC day, the transactions its server ran and its size (docs/api.md); the handler only
 * sums the days of the asked period from the catalog. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/internal.h"

/* A period bound: "YYYY-MM-DD" (that day's first or, with end_of_day, last millisecond, UTC)
 * or an ISO-8601 date-time with a zone. */
static bool parse_bound(const char *s, bool end_of_day, int64_t *ms)
{
    if (strlen(s) == 10) {
        char full[40];
        snprintf(full, sizeof full, "%sT00:00:00Z", s);
        if (!util_iso_parse(full, ms))
            return false;
        if (end_of_day)
            *ms += 86400000 - 1;
        return true;
    }
    return util_iso_parse(s, ms);
}

/* 1970-01-01 .. 9999-12-31 */
#define MS_MIN 0LL
#define MS_MAX 253402300799999LL

HANDLER(h_db_usage)
{
    app *a = ctx;
    store_database d;
    if (load_path_database(a, req, &d, e) != 0)
        return -1;
    int64_t now = util_wall_ms();
    /* default period: the current calendar month (UTC) until now */
    time_t tnow = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&tnow, &tm);
    struct tm first = {.tm_year = tm.tm_year, .tm_mon = tm.tm_mon, .tm_mday = 1};
    int64_t start = (int64_t)timegm(&first) * 1000, end = now;
    const char *qs = http_query(req, "startDate"), *qe = http_query(req, "endDate");
    if (qs && (!parse_bound(qs, false, &start) || start < MS_MIN || start > MS_MAX))
        return err_set(e, 400, "ValidationError", "startDate",
                       "'startDate' must be a date (2026-11-01) or an ISO-8601 date-time with "
                       "a zone");
    if (qe && (!parse_bound(qe, true, &end) || end < MS_MIN || end > MS_MAX))
        return err_set(e, 400, "ValidationError", "endDate",
                       "'endDate' must be a date (2026-11-30) or an ISO-8601 date-time with a "
                       "zone");
    if (end < start)
        return err_set(e, 400, "ValidationError", "endDate",
                       "'endDate' must not be before 'startDate'");
    char from[16], to[16], s_iso[32], e_iso[32], gen[32];
    util_day_from_ms(start, from);
    util_day_from_ms(end, to);
    store_usage u;
    if (store_usage_get(a->st, d.id, from, to, &u, e) != 0)
        return -1;
    util_iso_from_ms(start, s_iso);
    util_iso_from_ms(end, e_iso);
    util_iso_from_ms(now, gen);
    resp->body =
        json_pack("{s:{s:s, s:s}, s:{s:{s:I, s:s}, s:{s:f, s:s}}, s:s}", "period", "start", s_iso,
                  "end", e_iso, "metrics", "operations", "used", (json_int_t)u.operations, "unit",
                  "ops", "storage", "used", (double)u.storage_bytes / (1024.0 * 1024.0 * 1024.0),
                  "unit", "GiB", "generatedAt", gen);
    return 0;
}
