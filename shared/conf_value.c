/* Parsers for the scalar forms a config value or environment variable takes. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf.h"

/* Parses a decimal number followed by an optional unit from units[]; returns SBX_ERROR on junk or overflow. */
static int
parse_scaled(const char *s, const char *const *units, const uint64_t *scale, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || !isdigit((unsigned char)*s))
        return SBX_ERROR;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return SBX_ERROR;
    for (size_t i = 0; units[i] != NULL; i++) {
        if (strcasecmp(end, units[i]) == 0) {
            if (scale[i] != 0 && v > UINT64_MAX / scale[i])
                return SBX_ERROR;
            *out = v * scale[i];
            return SBX_OK;
        }
    }
    return SBX_ERROR;
}

int
sbx_parse_duration(const char *s, uint64_t *ms)
{
    static const char *const units[] = {"", "ms", "s", "m", "h", "d", NULL};
    static const uint64_t scale[] = {1000, 1, 1000, 60000, 3600000, 86400000};
    return parse_scaled(s, units, scale, ms);
}

int
sbx_parse_size(const char *s, uint64_t *bytes)
{
    static const char *const units[] = {"", "b", "k", "kb", "m", "mb", "g", "gb", NULL};
    static const uint64_t scale[] = {1, 1, 1 << 10, 1 << 10, 1 << 20, 1 << 20, 1 << 30, 1 << 30};
    return parse_scaled(s, units, scale, bytes);
}

int
sbx_parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off", "0"};

    for (size_t i = 0; i < sbx_nelems(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *v = true, SBX_OK;
        if (strcasecmp(s, no[i]) == 0)
            return *v = false, SBX_OK;
    }
    return SBX_ERROR;
}

static int
parse_port(const char *s, uint16_t *port)
{
    char *end;
    unsigned long v;

    if (!isdigit((unsigned char)*s))
        return SBX_ERROR;
    v = strtoul(s, &end, 10);
    if (*end != '\0' || v == 0 || v > 65535)
        return SBX_ERROR;
    *port = (uint16_t)v;
    return SBX_OK;
}

int
sbx_parse_listen(const char *s, sbx_listen_t *l)
{
    char host[64];
    const char *port_s, *colon;
    uint16_t port;
    size_t hlen;

    memset(l, 0, sizeof(*l));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return SBX_ERROR;
        hlen = (size_t)(close - s - 1);
        if (hlen >= sizeof(host))
            return SBX_ERROR;
        memcpy(host, s + 1, hlen);
        port_s = close + 2;
    } else if ((colon = strrchr(s, ':')) != NULL) {
        hlen = (size_t)(colon - s);
        if (hlen == 0 || hlen >= sizeof(host) || memchr(s, ':', hlen) != NULL)
            return SBX_ERROR;
        memcpy(host, s, hlen);
        port_s = colon + 1;
    } else {
        strcpy(host, "0.0.0.0");
        hlen = strlen(host);
        port_s = s;
    }
    host[hlen] = '\0';
    if (parse_port(port_s, &port) != SBX_OK)
        return SBX_ERROR;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");

    struct sockaddr_in *v4 = (struct sockaddr_in *)&l->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&l->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        l->addrlen = sizeof(*v4);
        snprintf(l->name, sizeof(l->name), "%s:%u", host, port);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        l->addrlen = sizeof(*v6);
        snprintf(l->name, sizeof(l->name), "[%s]:%u", host, port);
    } else {
        return SBX_ERROR; /* names other than localhost are not resolved: a listener must not depend on DNS */
    }
    return SBX_OK;
}

int
sbx_parse_cidr(const char *s, sbx_cidr_t *c)
{
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    unsigned maxp;

    if (alen == 0 || alen >= sizeof(addr))
        return SBX_ERROR;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, addr, c->addr) == 1)
        c->family = AF_INET, maxp = 32;
    else if (inet_pton(AF_INET6, addr, c->addr) == 1)
        c->family = AF_INET6, maxp = 128;
    else
        return SBX_ERROR;
    c->prefix = maxp;
    if (slash != NULL) {
        char *end;
        unsigned long p;
        if (!isdigit((unsigned char)slash[1]))
            return SBX_ERROR;
        p = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || p > maxp)
            return SBX_ERROR;
        c->prefix = (unsigned)p;
    }
    return SBX_OK;
}

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;

    if (memcmp(a, b, bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool
sbx_cidr_match(const sbx_cidr_t *cidr, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        return cidr->family == AF_INET && prefix_equal(cidr->addr, (const uint8_t *)&v4->sin_addr, cidr->prefix);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *a = v6->sin6_addr.s6_addr;
        if (cidr->family == AF_INET6)
            return prefix_equal(cidr->addr, a, cidr->prefix);
        /* An IPv4 peer on a dual-stack listener arrives as ::ffff:a.b.c.d. */
        return IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && prefix_equal(cidr->addr, a + 12, cidr->prefix);
    }
    return false;
}
