/* Random session ids, and their redacted form for logs. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/random.h>

#include "sbx.h"
#include "token.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int
sbx_token_new(char *out)
{
    unsigned char raw[16];
    size_t got = 0;
    ssize_t n;

    while (got < sizeof(raw)) {
        if ((n = getrandom(raw + got, sizeof(raw) - got, 0)) == -1) {
            if (errno == EINTR)
                continue;
            return SBX_ERROR;
        }
        got += (size_t)n;
    }
    /* 16 bytes = 128 bits = 21 groups of 6 bits + 2 bits. */
    uint32_t acc = 0;
    int bits = 0, o = 0;
    for (size_t i = 0; i < sizeof(raw); i++) {
        acc = acc << 8 | raw[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = alphabet[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return SBX_OK;
}

bool
sbx_token_valid(const char *s, size_t len)
{
    if (len != SBX_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

void
sbx_token_redact(const char *id, char *out, size_t len)
{
    snprintf(out, len, "%.6s...", id);
}
