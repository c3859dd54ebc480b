/* Client IP through trusted proxies only, scheme, API key and query parameters. */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "request.h"
#include "worker.h"

static bool
trusted(const struct sockaddr *sa)
{
    const sbx_conf_t *conf = sbx_worker.conf;

    for (size_t i = 0; i < conf->nproxies; i++)
        if (sbx_cidr_match(&conf->trusted_proxies[i], sa))
            return true;
    return false;
}

static void
addr_text(const struct sockaddr *sa, char *out)
{
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, SBX_IP_LEN);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, a->s6_addr + 12, out, SBX_IP_LEN);
        else
            inet_ntop(AF_INET6, a, out, SBX_IP_LEN);
    } else {
        strcpy(out, "unknown");
    }
}

/* Parses one X-Forwarded-For hop ("1.2.3.4", "1.2.3.4:5", "::1", "[::1]:5") into sa. */
static bool
parse_hop(const char *s, size_t len, struct sockaddr_storage *sa)
{
    char buf[SBX_IP_LEN];
    const char *colon;

    if (len == 0 || len >= sizeof(buf))
        return false;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return false;
        s++, len = (size_t)(close - s);
    } else if ((colon = memchr(s, ':', len)) != NULL && memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) == NULL) {
        len = (size_t)(colon - s); /* one colon: IPv4 with a port */
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(sa, 0, sizeof(*sa));
    if (inet_pton(AF_INET, buf, &((struct sockaddr_in *)sa)->sin_addr) == 1) {
        sa->ss_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)sa)->sin6_addr) == 1) {
        sa->ss_family = AF_INET6;
        return true;
    }
    return false;
}

void
sbx_request_client_ip(h2o_req_t *req, char *out)
{
    struct sockaddr_storage peer, hop;
    h2o_iovec_t hops[32];
    size_t nhops = 0;
    ssize_t cursor = -1;

    memset(&peer, 0, sizeof(peer));
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer) == 0) {
        strcpy(out, "unknown");
        return;
    }
    addr_text((struct sockaddr *)&peer, out);
    if (!trusted((struct sockaddr *)&peer))
        return;
    /* Gather every hop of every X-Forwarded-For header, in order. */
    while ((cursor = h2o_find_header(&req->headers, H2O_TOKEN_X_FORWARDED_FOR, cursor)) != -1) {
        h2o_iovec_t v = req->headers.entries[cursor].value;
        size_t start = 0;
        for (size_t i = 0; i <= v.len; i++) {
            if (i == v.len || v.base[i] == ',') {
                size_t a = start, b = i;
                while (a < b && (v.base[a] == ' ' || v.base[a] == '\t'))
                    a++;
                while (b > a && (v.base[b - 1] == ' ' || v.base[b - 1] == '\t'))
                    b--;
                if (nhops < sbx_nelems(hops))
                    hops[nhops++] = h2o_iovec_init(v.base + a, b - a);
                start = i + 1;
            }
        }
    }
    while (nhops-- > 0) {
        if (!parse_hop(hops[nhops].base, hops[nhops].len, &hop))
            return; /* garbage: the last address we could trust stands */
        addr_text((struct sockaddr *)&hop, out);
        if (!trusted((struct sockaddr *)&hop))
            return;
    }
}

const char *
sbx_request_scheme(h2o_req_t *req)
{
    struct sockaddr_storage peer;
    char proto[8];

    memset(&peer, 0, sizeof(peer));
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer) != 0 && trusted((struct sockaddr *)&peer) &&
        sbx_request_header(req, "x-forwarded-proto", proto, sizeof(proto)) && strcasecmp(proto, "https") == 0)
        return "https";
    return "http";
}

static bool
equal_ct(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = alen != blen;

    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (blen ? blen : 1)];
    return diff == 0;
}

bool
sbx_request_authorized(h2o_req_t *req, const char *body_key)
{
    const char *key = sbx_worker.conf->api_key;
    size_t klen;
    ssize_t i;

    if (key == NULL || key[0] == '\0')
        return true;
    klen = strlen(key);
    if ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-api-key"), -1)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        return equal_ct(v.base, v.len, key, klen);
    }
    if ((i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1)) != -1) {
        h2o_iovec_t v = req->headers.entries[i].value;
        return v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0 && equal_ct(v.base + 7, v.len - 7, key, klen);
    }
    if (body_key != NULL)
        return equal_ct(body_key, strlen(body_key), key, klen);
    return false;
}

static int
hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bool
sbx_request_query(h2o_req_t *req, const char *name, char *out, size_t len)
{
    size_t nlen = strlen(name);
    const char *q, *end;

    if (req->query_at == SIZE_MAX)
        return false;
    q = req->path.base + req->query_at + 1;
    end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *stop = amp ? amp : end;
        if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
            size_t o = 0;
            for (const char *p = q + nlen + 1; p < stop; p++) {
                char c = *p;
                if (c == '+')
                    c = ' ';
                else if (c == '%' && stop - p >= 3 && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                    c = (char)(hexval(p[1]) << 4 | hexval(p[2]));
                    p += 2;
                }
                if (o + 1 >= len)
                    return false;
                out[o++] = c;
            }
            out[o] = '\0';
            return true;
        }
        q = stop + 1;
    }
    return false;
}

bool
sbx_request_header(h2o_req_t *req, const char *name, char *out, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);

    if (i == -1 || req->headers.entries[i].value.len >= len)
        return false;
    memcpy(out, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    out[req->headers.entries[i].value.len] = '\0';
    return true;
}
