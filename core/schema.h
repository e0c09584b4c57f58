/* schema.h - the history of the database's layout: what each schema version
 * adds to the one before (STORE_SCHEMA_VERSION in store.h is the newest).
 * store_open() runs the steps an older database needs, all in the one write
 * transaction that records the new version, so an upgrade happens whole or
 * not at all. */
#ifndef TIKD_SCHEMA_H
#define TIKD_SCHEMA_H

#include "store.h"

/* Bring a database of schema version `from` (>= 1) up to `to`. */
int schema_upgrade(struct store_txn *t, unsigned from, unsigned to);

#endif
