/* store internals shared by the files of src/store (never included outside it). */
#ifndef PF_STORE_STORE_INTERN_H
#define PF_STORE_STORE_INTERN_H

#include <sqlite3.h>

#include "store/store.h"

/* The calling thread's SQLite connection (opened on first use), inside whatever
 * transaction store_tx_begin opened on this thread. NULL with e filled on failure. */
sqlite3 *store__db(store *s, pf_err *e);

#endif
