/* libFuzzer target: the data path's first-packet parser. Whatever it accepts as a
 * StartupMessage must rebuild (with another database) into a packet it parses again with
 * the same user and parameters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datapath/datapath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_first f;
    dp_first_kind k = dp_first_parse(data, size, &f);
    if (k == DP_FIRST_MORE || k == DP_FIRST_BAD)
        return 0;
    if (f.len > size)
        abort();
    if (k != DP_FIRST_STARTUP)
        return 0;
    size_t n = 0;
    uint8_t *r = dp_startup_build(&f, "postgres", &n);
    dp_first g;
    if (dp_first_parse(r, n, &g) != DP_FIRST_STARTUP || g.len != n || strcmp(g.user, f.user) ||
        strcmp(g.database, "postgres") || g.nparams < f.nparams)
        abort();
    free(r);
    return 0;
}
