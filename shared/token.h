/* Session ids: the only key to a shell, so 128 bits from the kernel's random source. */
#ifndef SBX_TOKEN_H
#define SBX_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define SBX_TOKEN_LEN 22 /* base64url of 16 bytes, no padding */

/* Writes a new NUL-terminated id into out (SBX_TOKEN_LEN + 1 bytes). Returns SBX_OK, or SBX_ERROR if getrandom fails. */
int sbx_token_new(char *out);
/* True when s has the shape of an id (length and alphabet); says nothing of whether it exists. */
bool sbx_token_valid(const char *s, size_t len);
/* Writes the loggable form of an id: its first 6 characters and "...", so logs never hold a usable key. */
void sbx_token_redact(const char *id, char *out, size_t len);

#endif
