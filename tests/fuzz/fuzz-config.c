/*
 * Fuzz target for the configuration reader (lib/config.c over libinih).
 * Input: the bytes of a configuration file, NUL bytes and all. Every input
 * must either load or fail with one "NAME..." line of printable ASCII (no
 * byte of the file reaches the terminal raw); a loaded configuration must
 * hold what config_load_buffer() promises (hostname, an absolute data_dir,
 * at least one listener, each with a protocol and an address).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[1024];

	if (size > 65536)
		return 0;
	if (config_load_buffer((const char *)data, size, "f.conf", &cfg, err, sizeof(err)) == 0) {
		if (!cfg.hostname || !cfg.data_dir || cfg.data_dir[0] != '/' || cfg.n_listeners == 0)
			abort();
		if (cfg.log_file && cfg.log_file[0] != '/')
			abort();
		for (size_t i = 0; i < cfg.n_listeners; i++)
			if (!cfg.listeners[i].have_protocol || cfg.listeners[i].n_addrs == 0)
				abort();
	} else {
		if (strncmp(err, "f.conf", 6) != 0)
			abort();
		for (const char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				abort();
	}
	config_free(&cfg);
	return 0;
}
