/*
 * Definitions every sandboxd file may use: return codes and small helpers.
 * Library failure conventions (libyaml 1/0, hiredis err, jansson -1) are
 * converted to these codes in the one file that calls the library.
 */
#ifndef SBX_H
#define SBX_H

#include <stddef.h>
#include <stdint.h>

#define SBX_OK 0
#define SBX_ERROR -1
#define SBX_AGAIN -2
#define SBX_DECLINED -3

#define SBX_VERSION PACKAGE_VERSION

#define sbx_nelems(a) (sizeof(a) / sizeof((a)[0]))

/* Milliseconds since the epoch (CLOCK_REALTIME): for timestamps shown to people. */
uint64_t sbx_time_wall_ms(void);
/* Milliseconds of CLOCK_MONOTONIC: for every deadline and interval. */
uint64_t sbx_time_mono_ms(void);
/*
 * Writes ms-since-epoch as ISO-8601 UTC with milliseconds
 * ("2026-11-23T16:27:00.123Z") into buf, which must hold 25 bytes.
 */
void sbx_time_iso8601(uint64_t wall_ms, char *buf);
/* Writes a duration in seconds as "2h15m30s" (or "30s", "1m0s") into buf (>= 32 bytes). */
void sbx_time_uptime(uint64_t secs, char *buf, size_t len);

#endif
