/*
 * Fuzz target for the configuration reader (lib/config.c over libinih).
 * Input: the text of a configuration file. Every input must either load or
 * fail with a "NAME:..." reason; a loaded configuration must hold what
 * config_load_string() promises (hostname, data_dir, at least one listener,
 * each with a protocol and an address).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[1024];
	char *text;

	if (size > 65536)
		return 0;
	text = xstrndup((const char *)data, size);
	if (config_load_string(text, "f.conf", &cfg, err, sizeof(err)) == 0) {
		if (!cfg.hostname || !cfg.data_dir || cfg.n_listeners == 0)
			abort();
		for (size_t i = 0; i < cfg.n_listeners; i++)
			if (!cfg.listeners[i].have_protocol || cfg.listeners[i].n_addrs == 0)
				abort();
	} else if (strncmp(err, "f.conf", 6) != 0 || strchr(err, '\n')) {
		abort();
	}
	config_free(&cfg);
	free(text);
	return 0;
}
