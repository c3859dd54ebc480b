/* UTF-8 validation and boundary finding. */
#include "config.h"

#include <string.h>

#include "utf8.h"

size_t
sbx_utf8_seq_len(const unsigned char *s, size_t avail)
{
    size_t n;
    unsigned cp;

    if (avail == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0)
        n = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0)
        n = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool
sbx_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0, n;

    while (i < len) {
        if (s[i] < 0x80) { /* the common case: ASCII runs */
            i++;
            continue;
        }
        if ((n = sbx_utf8_seq_len(s + i, len - i)) == 0)
            return false;
        i += n;
    }
    return true;
}

size_t
sbx_utf8_whole_prefix(const unsigned char *s, size_t len)
{
    size_t i = len, back = 0, need;

    while (i > 0 && back < 3 && (s[i - 1] & 0xc0) == 0x80)
        i--, back++;
    if (i == 0)
        return len;
    unsigned char lead = s[i - 1];
    need = (lead & 0xe0) == 0xc0 ? 2 : (lead & 0xf0) == 0xe0 ? 3 : (lead & 0xf8) == 0xf0 ? 4 : 1;
    /* The last sequence starts at i - 1 and has fewer bytes than its lead announces: hold it back. */
    if (need > 1 && back + 1 < need)
        return i - 1;
    return len;
}

size_t
sbx_utf8_sanitize(const unsigned char *s, size_t len, char *out)
{
    size_t i = 0, o = 0, n;

    while (i < len) {
        if ((n = sbx_utf8_seq_len(s + i, len - i)) == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD REPLACEMENT CHARACTER */
            o += 3;
            i++;
            continue;
        }
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    return o;
}
