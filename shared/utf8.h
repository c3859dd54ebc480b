/* UTF-8 checks shared by the log (JSON escaping) and the terminal (frame boundaries). Pure. */
#ifndef SBX_UTF8_H
#define SBX_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at s within avail bytes; 0 if invalid or cut short. */
size_t sbx_utf8_seq_len(const unsigned char *s, size_t avail);
/* True when s[0..len) is entirely valid UTF-8. */
bool sbx_utf8_valid(const unsigned char *s, size_t len);
/*
 * Length of the longest prefix of s[0..len) that does not end inside a
 * multi-byte sequence: at most 3 trailing bytes (the start of a sequence
 * still to come) are left out. Invalid bytes are not held back.
 */
size_t sbx_utf8_whole_prefix(const unsigned char *s, size_t len);

/*
 * Copies s[0..len) into out (which must hold 3 * len bytes) with every byte
 * that is not part of valid UTF-8 replaced by U+FFFD; returns the bytes
 * written. For text that must go into JSON whatever a program printed.
 */
size_t sbx_utf8_sanitize(const unsigned char *s, size_t len, char *out);

#endif
