/* Regions: the contract's region ids, which of them this server serves (--regions) and
 * the default; the region lists of GET /v1/regions and its postgres and accelerate
 * variants. */
#include <stdio.h>
#include <string.h>

#include "api/internal.h"

/* The region ids the contract knows, with their display names. */
static const struct {
    const char *id;
    const char *name;
} contract_regions[] = {
    {"us-east-1", "US East (N. Virginia)"},
    {"us-west-1", "US West (N. California)"},
    {"eu-west-3", "Europe (Paris)"},
    {"eu-central-1", "Europe (Frankfurt)"},
    {"ap-northeast-1", "Asia Pacific (Tokyo)"},
    {"ap-southeast-1", "Asia Pacific (Singapore)"},
};
#define N_CONTRACT (sizeof contract_regions / sizeof contract_regions[0])

static api_region *add_region(app *a, const char *id, const char *name, bool available)
{
    for (size_t i = 0; i < a->nregions; i++)
        if (strcmp(a->regions[i].id, id) == 0)
            return &a->regions[i]; /* the first mention (the configuration) wins */
    if (a->nregions >= API_MAX_REGIONS)
        return NULL;
    api_region *r = &a->regions[a->nregions++];
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->available = available;
    return r;
}

int api_regions_configure(app *a, const char *spec, pf_err *e)
{
    a->nregions = 0;
    a->default_region[0] = '\0';
    if (!spec || !*spec)
        spec = "us-east-1=US East (N. Virginia)";
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (eq)
            *eq = '\0';
        const char *id = item;
        size_t idlen = strlen(id);
        bool ok = idlen > 0 && idlen < 32;
        for (const char *p = id; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-';
        if (!ok)
            return err_set(e, 400, "ValidationError", "--regions",
                           "bad region id '%s' (use lowercase letters, digits and '-')", id);
        if (!add_region(a, id, eq ? eq + 1 : id, true))
            return err_set(e, 400, "ValidationError", "--regions", "too many regions");
        if (!a->default_region[0])
            snprintf(a->default_region, sizeof a->default_region, "%s", id);
    }
    /* the contract's other ids are listed, unavailable; configured ones keep their names */
    for (size_t i = 0; i < N_CONTRACT; i++)
        add_region(a, contract_regions[i].id, contract_regions[i].name, false);
    return 0;
}

const api_region *api_region_find(app *a, const char *id)
{
    for (size_t i = 0; i < a->nregions; i++)
        if (strcmp(a->regions[i].id, id) == 0)
            return &a->regions[i];
    return NULL;
}

int api_region_resolve(app *a, const char *want, const char **out, pf_err *e)
{
    if (!want || !*want) {
        *out = a->default_region;
        return 0;
    }
    const api_region *r = api_region_find(a, want);
    if (!r)
        return err_set(e, 400, "ValidationError", "region",
                       "Unknown region '%s'; GET /v1/regions/postgres lists them", want);
    if (!r->available)
        return err_set(e, 400, "RegionUnavailable", "region",
                       "The region '%s' is not available on this pgfleet server; use one of "
                       "the available regions from GET /v1/regions/postgres",
                       want);
    *out = r->id;
    return 0;
}

HANDLER(h_regions_list)
{
    app *a = ctx;
    const char *product = http_query(req, "product");
    if (product && strcmp(product, "postgres") != 0 && strcmp(product, "accelerate") != 0)
        return err_set(e, 400, "ValidationError", "product",
                       "The query parameter 'product' must be 'postgres' or 'accelerate'");
    json_t *data = json_array();
    if (!product || strcmp(product, "postgres") == 0)
        for (size_t i = 0; i < a->nregions; i++)
            json_array_append_new(
                data, json_pack("{s:s, s:s, s:s, s:s, s:s}", "id", a->regions[i].id, "type",
                                "region", "name", a->regions[i].name, "product", "postgres",
                                "status", a->regions[i].available ? "available" : "unavailable"));
    resp->body = json_pack("{s:o}", "data", data);
    return 0;
}

HANDLER(h_regions_postgres)
{
    (void)req;
    (void)e;
    app *a = ctx;
    json_t *data = json_array();
    for (size_t i = 0; i < a->nregions; i++)
        json_array_append_new(data,
                              json_pack("{s:s, s:s, s:s, s:s}", "id", a->regions[i].id, "type",
                                        "region", "name", a->regions[i].name, "status",
                                        a->regions[i].available ? "available" : "unavailable"));
    resp->body = json_pack("{s:o}", "data", data);
    return 0;
}

/* pgfleet runs no Accelerate: no region offers it. */
HANDLER(h_regions_accelerate)
{
    (void)ctx;
    (void)req;
    (void)e;
    resp->body = json_pack("{s:[]}", "data");
    return 0;
}
