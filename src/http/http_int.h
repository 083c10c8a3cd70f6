/* http internals, shared by server.c (the daemon, its callbacks, answers), work.c (the
 * handler threads and waiting answers) and guard.c (the header and body deadlines). */
#ifndef PF_HTTP_HTTP_INT_H
#define PF_HTTP_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "http/http.h"

struct MHD_Daemon;
struct MHD_Response;

/* One TCP connection, from accept to close (guard.c). */
typedef struct conn_info {
    struct conn_info *prev, *next;
    http_server *s;
    int fd;
    int64_t deadline_ms; /* 0: none now */
    bool cut;            /* shut down by the sweep */
} conn_info;

typedef enum { W_NONE = 0, W_WAITING, W_WOKEN, W_ANSWERED } wait_state;
typedef enum { JOB_HANDLE = 0, JOB_THEN } job_kind;

/* A certificate chain and its key, as GnuTLS serves them (tls.c). */
typedef struct http__cred http__cred;

/* One request, from its header to MHD's completion notice (and, when it waited, until
 * the wait's own reference is given back). */
typedef struct req_ctx {
    http_server *s;
    struct MHD_Connection *c;
    conn_info *ci;
    util_buf body;
    bool early;       /* answered from the event thread (a refused request) */
    bool discard;     /* the body is past the cap: dropped as it comes, then 413 */
    size_t discarded; /* bytes dropped so far */
    bool dispatched;  /* suspended for a worker */
    int64_t started_ms;
    const http_route *route;
    char pbuf[512]; /* path parameters */
    http_req req;
    http_resp resp;
    const char *log_method, *log_url; /* MHD's, valid until completion */
    /* the answer a worker made, queued by the event thread once resumed */
    struct MHD_Response *answer;
    int status;
    /* work.c: the queue, and the wait (state and refs under waits_mu) */
    struct req_ctx *qnext;
    job_kind job;
    wait_state wstate;
    int refs; /* the connection's, and an armed wait's */
    struct req_ctx *wprev, *wnext;
} req_ctx;

struct http_server {
    struct MHD_Daemon *daemon;
    http_config cfg; /* limits resolved */
    /* tls.c: the served pair, under tls_mu (replaced ones behind it) */
    bool tls_on;
    pthread_mutex_t tls_mu;
    http__cred *tls;
    /* what http_stats_get reports; buckets are not cumulative here */
    atomic_uint_least64_t by_class[6];
    atomic_uint_least64_t bucket[HTTP_LAT_BUCKETS + 1];
    atomic_uint_least64_t ms_sum;
    atomic_int inflight; /* dispatched requests not yet completed */
    /* work.c */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    req_ctx *q_head, *q_tail, *h_head, *h_tail; /* jobs; HTTP_HEAVY ones apart */
    int heavy_running;
    bool pool_stop;
    pthread_t *workers;
    int nworkers;
    req_ctx *waiting; /* under waits_mu */
    bool stopping;    /* under waits_mu: no new wait */
    /* guard.c */
    pthread_mutex_t conns_mu;
    pthread_cond_t sweep_cv;
    conn_info *conns;
    bool sweep_stop;
    pthread_t sweeper;
    bool sweeper_started;
};

/* ---- reply.c: answers and the request context's lifetime (below server.c and work.c) ---- */
struct MHD_Response *http__json_response(json_t *body, const char *request_id,
                                         const http_resp *resp);
struct MHD_Response *http__raw_response(char *raw, size_t len, const char *ctype,
                                        const char *request_id, const http_resp *resp);
/* The envelope of e (*status gets its HTTP status); Retry-After from e, or 2 s on a 503. */
struct MHD_Response *http__error_response(const pf_err *e, const char *request_id, int *status);
void http__release_resp(http_resp *resp);
void http__new_request_id(req_ctx *ctx);
/* Counts the answer (status class, latency) and logs the request line. */
void http__count_and_log(req_ctx *ctx, int status);
/* Makes the answer of ctx from rc/e/resp (frees what resp owns), counts and logs it, and
 * resumes the connection so the event thread sends it. */
void http__finish(req_ctx *ctx, int rc, pf_err *e);
/* http__finish without the resume: the answer made into ctx->answer and ctx->status. */
void http__make_answer(req_ctx *ctx, int rc, pf_err *e);
/* The auth hook (HTTP_AUTH routes) and the handler: 0 or -1 with e. */
int http__handle(req_ctx *ctx, pf_err *e);
/* After a handler returned 0 with a wait, the connection suspended: arms the wait. */
void http__start_wait(req_ctx *ctx);
/* Drops one reference of ctx (freeing it with the last). */
void http__ctx_unref(req_ctx *ctx);

/* Guards ctx->refs, the wait state and the server's list of waiting requests. */
extern pthread_mutex_t http__waits_mu;

/* ---- work.c ---- */
void http__pool_start(http_server *s);
void http__pool_push(http_server *s, req_ctx *ctx, job_kind job);
/* Answers every waiting request 503 and refuses new waits. */
void http__answer_waiting(http_server *s);
/* Runs the queued jobs to the end and joins the workers. */
void http__pool_stop(http_server *s);

/* tls.c: the served pair loaded (and checked) at start, GnuTLS's certificate callback for
 * MHD_OPTION_HTTPS_CERT_CALLBACK, every pair freed at stop (nothing without TLS). */
int http__tls_start(http_server *s, const char *cert_pem, const char *key_pem, pf_err *e);
void *http__tls_callback(void);
void http__tls_stop(http_server *s);

/* guard.c */
void http__guard_start(http_server *s);
void http__guard_stop(http_server *s);
void http__conn_started(http_server *s, struct MHD_Connection *c, void **socket_context);
void http__conn_closed(http_server *s, conn_info *ci);
/* Sets (0: clears) ci's deadline, ms from now. */
void http__conn_deadline(http_server *s, conn_info *ci, int ms);

#endif
