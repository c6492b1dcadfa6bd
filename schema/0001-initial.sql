-- buzon user directory, version 1: domains, users, aliases, settings.
--
-- Every name is stored lower-case (the CHECKs hold the code to that), so
-- lookups compare with plain "=" and use the indexes. The schema_version
-- table holds one row; the migration runner in storage/directory.c writes it
-- after each numbered file has been applied in the same transaction.

CREATE TABLE schema_version (
	version INTEGER NOT NULL
);

CREATE TABLE domains (
	id INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE CHECK (name <> '' AND name = lower(name)),
	created INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);

-- password holds a crypt(3) hash: $y$ (written by buzon), $2b$, $6$, $5$ (imported).
CREATE TABLE users (
	id INTEGER PRIMARY KEY,
	domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE RESTRICT,
	localpart TEXT NOT NULL CHECK (localpart <> '' AND localpart = lower(localpart)),
	password TEXT NOT NULL,
	quota INTEGER NOT NULL DEFAULT 0 CHECK (quota >= 0),
	enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
	created INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),
	UNIQUE (domain_id, localpart)
);

-- One row per (source, target): an alias with several targets has several
-- rows. source is "localpart@domain" or "@domain" (the catch-all of that
-- domain); domain_id is the source's domain, so that a domain with aliases
-- cannot be deleted. Deleting a user deletes the rows that point to it.
CREATE TABLE aliases (
	id INTEGER PRIMARY KEY,
	source TEXT NOT NULL CHECK (source <> '' AND source = lower(source)),
	domain_id INTEGER NOT NULL REFERENCES domains (id) ON DELETE RESTRICT,
	target_user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER)),
	UNIQUE (source, target_user_id)
);

CREATE INDEX aliases_target ON aliases (target_user_id);
CREATE INDEX aliases_domain ON aliases (domain_id);

-- Server-wide settings that belong with the data rather than the config file.
CREATE TABLE settings (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
