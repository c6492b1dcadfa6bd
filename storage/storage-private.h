#ifndef BUZON_STORAGE_PRIVATE_H
#define BUZON_STORAGE_PRIVATE_H

/* Helpers shared by the files of storage/ and nothing else. */

/* Creates path and its missing parents with mode 0700 (mkdir -p); an
 * existing directory is fine. 0 or a negative errno. */
int storage_mkdir_p(const char *path);

#endif
