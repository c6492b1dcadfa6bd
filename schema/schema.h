#ifndef BUZON_SCHEMA_H
#define BUZON_SCHEMA_H

#include <stddef.h>

/*
 * The SQL migrations of schema/NNNN-*.sql, embedded by schema/embed.py at
 * build time. schema_migrations[i].version is i + 1: the files are numbered
 * from 0001 without gaps (the generator refuses anything else). A migration
 * is applied once, in a transaction, and never edited after a release: a
 * change to the schema is a new file.
 */
struct schema_migration {
	unsigned version;
	const char *name;   /* file name, for error messages */
	const char *sql;    /* the statements, run with sqlite3_exec() */
};

extern const struct schema_migration schema_migrations[];
extern const size_t schema_n_migrations;

#endif
