-- buzon user directory, version 3: the failed-login table of every protocol
-- (lib/lockout.h), kept across restarts.
--
-- The server owns auth_failures: it writes its whole table from a worker
-- thread every few seconds when it changed, and at shutdown, and reads it at
-- start. Times are wall-clock milliseconds since the epoch.
--
-- auth_clears holds the addresses `buzon lockout clear` forgot while a server
-- may be running: the server reads (and empties) it before each write and
-- forgets those addresses in memory too, so a clear is never written back.

CREATE TABLE auth_failures (
	address TEXT PRIMARY KEY CHECK (address <> ''),
	failures INTEGER NOT NULL DEFAULT 0,         -- the decaying count of the delay
	last_ms INTEGER NOT NULL DEFAULT 0,
	window_failures INTEGER NOT NULL DEFAULT 0,  -- failures in the lockout window
	window_start_ms INTEGER NOT NULL DEFAULT 0,
	locked_until_ms INTEGER NOT NULL DEFAULT 0   -- 0: not locked out
) WITHOUT ROWID;

CREATE TABLE auth_clears (
	address TEXT PRIMARY KEY
) WITHOUT ROWID;
