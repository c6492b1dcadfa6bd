#ifndef BUZON_FOLDER_WATCH_H
#define BUZON_FOLDER_WATCH_H

#include <uv.h>

/*
 * Changes made to a Maildir folder by something other than buzon (a file
 * dropped into new/ by another delivery agent, a flag changed in a file
 * name by another Maildir reader) reach the sessions watching the folder:
 * while a notify key (the folder's directory) has subscribers, its new/ and
 * cur/ are watched (inotify through libuv) and a change publishes the key,
 * at most once per FOLDER_WATCH_DELAY_MS. Where the kernel refuses a watch
 * (inotify limits), the key is published every FOLDER_WATCH_POLL_MS
 * instead. buzon's own changes are published directly and are also seen
 * here, a little later; a session's refresh with nothing new costs little.
 * Loop thread only.
 */

#define FOLDER_WATCH_DELAY_MS 150
#define FOLDER_WATCH_POLL_MS 30000

/* Starts watching the folders of notify keys as they get subscribers. */
void folder_watch_start(uv_loop_t *loop);
/* Stops every watch (before the loop is closed); runs the loop until the
 * handles are closed. */
void folder_watch_stop(void);
/* The number of folders watched now, lingering ones included (a folder
 * keeps its watch for a minute after its last subscriber left). */
unsigned folder_watch_count(void);

#endif
