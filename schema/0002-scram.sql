-- buzon user directory, version 2: SCRAM secrets beside the password hash.
--
-- scram_sha1 and scram_sha256 hold what a SCRAM-SHA-1(-PLUS) and a
-- SCRAM-SHA-256(-PLUS) server needs (RFC 5802 3), in the text form of
-- RFC 5803 (the LDAP authPassword scheme), base64 as in RFC 4648:
--
--   SCRAM-SHA-256$<iteration count>:<salt>$<StoredKey>:<ServerKey>
--   SCRAM-SHA-256$10000:3hEvYzvcmG/I6QHnGBsRIA==$wG0...=:mOA...=
--
-- written by lib/sasl-gsasl.c's sasl_scram_secret_make() (GNU SASL's
-- gsasl_scram_secrets_from_password() with a 16-octet random salt; 4096
-- iterations for SHA-1, 10000 for SHA-256) at "user add" and "user passwd".
-- Neither the password nor the SaltedPassword is stored: the two keys let a
-- server check a client proof, not log in as the user (RFC 5802 9).
--
-- NULL for users made before this migration and for imported hashes
-- ("user import-hash"): they keep logging in with PLAIN, LOGIN, USER/PASS
-- and IMAP LOGIN, and get SCRAM at their next password change. A SCRAM
-- login of such a user fails like a wrong password.
ALTER TABLE users ADD COLUMN scram_sha1 TEXT CHECK (scram_sha1 IS NULL OR scram_sha1 LIKE 'SCRAM-SHA-1$%');
ALTER TABLE users ADD COLUMN scram_sha256 TEXT CHECK (scram_sha256 IS NULL OR scram_sha256 LIKE 'SCRAM-SHA-256$%');

-- The key of the salts a SCRAM login of an unknown name is shown (so that
-- it looks like a user's, the same on every try and across restarts):
-- 32 random octets, hex. Kept here so that it lives and dies with the users.
INSERT INTO settings (key, value) VALUES ('sasl_secret', lower(hex(randomblob(32))));
