/*
 * Structured logging: one JSON object per line, written with one write(2)
 * so lines from the master and every worker never interleave.
 *
 *   sbx_log(SBX_LOG_NOTICE, "worker exited", "child=%d status=%d", pid, st);
 *   -> {"time":"...","level":"notice","pid":1,"role":"master",
 *       "msg":"worker exited","child":42,"status":0}
 *
 * The fields format is a space-separated list of key=%conv, where conv is
 * one of d i u ld lu lld llu zu f s .Ns; %s values are JSON-escaped strings
 * (NULL prints null), the others are JSON numbers. Callable from any
 * process; not from a signal handler.
 */
#ifndef SBX_LOG_H
#define SBX_LOG_H

enum { SBX_LOG_DEBUG, SBX_LOG_INFO, SBX_LOG_NOTICE, SBX_LOG_WARN, SBX_LOG_ERROR };

/* Returns the level for "debug".."error", or -1. */
int sbx_log_level_parse(const char *name);
void sbx_log_set_level(int level);
/* role is a static string ("master", "worker"); it is not copied. */
void sbx_log_set_role(const char *role);
/*
 * Directs the log to file (appending), or to stderr when file is NULL.
 * Returns SBX_OK, or SBX_ERROR (with the old target kept) if it cannot be opened.
 */
int sbx_log_open(const char *file);
/* Reopens the current file after rotation (SIGUSR1). */
int sbx_log_reopen(void);

void sbx_log(int level, const char *msg, const char *fields, ...) __attribute__((format(printf, 3, 4)));

#define sbx_log_error(...) sbx_log(SBX_LOG_ERROR, __VA_ARGS__)
#define sbx_log_warn(...) sbx_log(SBX_LOG_WARN, __VA_ARGS__)
#define sbx_log_notice(...) sbx_log(SBX_LOG_NOTICE, __VA_ARGS__)
#define sbx_log_info(...) sbx_log(SBX_LOG_INFO, __VA_ARGS__)
#define sbx_log_debug(...) sbx_log(SBX_LOG_DEBUG, __VA_ARGS__)

/*
 * Appends s as the body of a JSON string (no quotes) to buf at *pos, never
 * past cap - 1; control characters and invalid UTF-8 bytes are escaped.
 * Used by the log and by anything else that hand-builds small JSON.
 */
void sbx_json_escape(char *buf, size_t *pos, size_t cap, const char *s);

#endif
