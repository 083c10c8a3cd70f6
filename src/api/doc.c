/* GET /v1/doc (extension, no auth): the OpenAPI 3.1 document of exactly what this server
 * serves. It is made from the SDK's types and the route table by tests/e2e/gen-openapi.mjs
 * into src/api/openapi.json (committed: `make` needs no node), which the assembler embeds
 * here as it is; a test checks that the committed file is what the generator makes now. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"

/* The file's bytes between two symbols, in read-only data (the path is relative to the
 * directory make runs in, the repository's root). */
__asm__(".pushsection .rodata\n"
        ".global pf_openapi_json\n"
        ".type pf_openapi_json, @object\n"
        ".balign 16\n"
        "pf_openapi_json:\n"
        ".incbin \"src/api/openapi.json\"\n"
        ".global pf_openapi_json_end\n"
        "pf_openapi_json_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const char pf_openapi_json[];
extern const char pf_openapi_json_end[];

HANDLER(h_doc)
{
    (void)ctx;
    (void)req;
    (void)e;
    size_t len = (size_t)(pf_openapi_json_end - pf_openapi_json);
    resp->status = 200;
    resp->raw = xmalloc(len);
    memcpy(resp->raw, pf_openapi_json, len);
    resp->raw_len = len;
    resp->content_type = "application/json";
    return 0;
}
