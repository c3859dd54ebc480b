/*
 * Control messages between the master and its workers: small msgpack maps
 * over one SOCK_SEQPACKET pair per worker (one message per packet). Binary
 * and never read by people, unlike the logs and the Redis registry.
 *
 *   {"type": "ready", "pid": P, "slot": S, "generation": G}   worker -> master: serving
 *   {"type": "draining", "pid": P, ...}                         worker -> master: stopped accepting
 */
#ifndef SBX_CONTROL_H
#define SBX_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#define SBX_CONTROL_MAX 256 /* bytes of one encoded message */

typedef enum { SBX_CONTROL_UNKNOWN = 0, SBX_CONTROL_READY, SBX_CONTROL_DRAINING } sbx_control_type_t;

typedef struct sbx_control_s {
    sbx_control_type_t type;
    int64_t pid;
    int64_t slot;
    int64_t generation;
} sbx_control_t;

/* Encodes msg into buf (SBX_CONTROL_MAX bytes); returns its length, or 0 if it does not fit. Pure. */
size_t sbx_control_encode(const sbx_control_t *msg, char *buf, size_t len);
/*
 * Decodes buf[0..len) into msg. Returns SBX_OK, or SBX_ERROR for anything
 * that is not a map of known keys with values of the right type (unknown
 * keys are ignored, so a newer worker can talk to an older master). Pure.
 */
int sbx_control_decode(const char *buf, size_t len, sbx_control_t *msg);

/* Sends msg on fd without blocking (a full channel drops it: control messages are advisory). */
int sbx_control_send(int fd, const sbx_control_t *msg);

#endif
