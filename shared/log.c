/* JSON-lines log shared by master and workers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sbx.h"
#include "log.h"
#include "utf8.h"

static int log_fd = 2;
static int log_level = SBX_LOG_INFO;
static const char *log_role = "master";
static char *log_path;

static const char *level_names[] = {"debug", "info", "notice", "warn", "error"};

int
sbx_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sbx_nelems(level_names); i++)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void
sbx_log_set_level(int level)
{
    log_level = level;
}

void
sbx_log_set_role(const char *role)
{
    log_role = role;
}

int
sbx_log_open(const char *file)
{
    int fd;
    char *copy;

    if (file == NULL) {
        if (log_fd != 2)
            close(log_fd);
        log_fd = 2;
        free(log_path);
        log_path = NULL;
        return SBX_OK;
    }
    if ((fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640)) == -1)
        return SBX_ERROR;
    if ((copy = strdup(file)) == NULL) {
        close(fd);
        return SBX_ERROR;
    }
    if (log_fd != 2)
        close(log_fd);
    log_fd = fd;
    free(log_path);
    log_path = copy;
    return SBX_OK;
}

int
sbx_log_reopen(void)
{
    char *path;
    int rc;

    if (log_path == NULL)
        return SBX_OK;
    /* sbx_log_open frees log_path: keep our own copy across the call. */
    if ((path = strdup(log_path)) == NULL)
        return SBX_ERROR;
    rc = sbx_log_open(path);
    free(path);
    return rc;
}

static void
put(char *buf, size_t *pos, size_t cap, const char *s, size_t n)
{
    if (*pos + n >= cap)
        n = *pos < cap - 1 ? cap - 1 - *pos : 0;
    memcpy(buf + *pos, s, n);
    *pos += n;
}

void
sbx_json_escape(char *buf, size_t *pos, size_t cap, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];
    size_t n;

    while (*p != '\0') {
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\', esc[1] = (char)*p;
            put(buf, pos, cap, esc, 2);
            p++;
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            put(buf, pos, cap, esc, 6);
            p++;
        } else if ((n = sbx_utf8_seq_len(p, strnlen((const char *)p, 4))) == 0) {
            /* Not UTF-8: show the byte as U+FFFD's neighbour, \u00XX, so the line stays valid JSON. */
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            put(buf, pos, cap, esc, 6);
            p++;
        } else {
            put(buf, pos, cap, (const char *)p, n);
            p += n;
        }
    }
}

/* Formats the "key=%conv ..." list into buf as ,"key":value pairs. */
static void
put_fields(char *buf, size_t *pos, size_t cap, const char *fmt, va_list ap)
{
    char num[64];

    while (*fmt != '\0') {
        const char *key = fmt, *eq = strchr(fmt, '=');
        int lcount = 0, z = 0, prec = -1;

        if (eq == NULL || eq[1] != '%')
            return; /* malformed format: a programming error; keep what we have */
        put(buf, pos, cap, ",\"", 2);
        put(buf, pos, cap, key, (size_t)(eq - key));
        put(buf, pos, cap, "\":", 2);
        fmt = eq + 2;
        if (*fmt == '.') /* %.Ns: at most N bytes of the string */
            for (prec = 0, fmt++; *fmt >= '0' && *fmt <= '9'; fmt++)
                prec = prec * 10 + (*fmt - '0');
        while (*fmt == 'l')
            lcount++, fmt++;
        if (*fmt == 'z')
            z = 1, fmt++;
        switch (*fmt) {
        case 'd':
        case 'i':
            if (lcount == 2)
                snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
            else if (lcount == 1)
                snprintf(num, sizeof(num), "%ld", va_arg(ap, long));
            else
                snprintf(num, sizeof(num), "%d", va_arg(ap, int));
            put(buf, pos, cap, num, strlen(num));
            break;
        case 'u':
            if (z)
                snprintf(num, sizeof(num), "%zu", va_arg(ap, size_t));
            else if (lcount == 2)
                snprintf(num, sizeof(num), "%llu", va_arg(ap, unsigned long long));
            else if (lcount == 1)
                snprintf(num, sizeof(num), "%lu", va_arg(ap, unsigned long));
            else
                snprintf(num, sizeof(num), "%u", va_arg(ap, unsigned));
            put(buf, pos, cap, num, strlen(num));
            break;
        case 'f':
            snprintf(num, sizeof(num), "%.3f", va_arg(ap, double));
            put(buf, pos, cap, num, strlen(num));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL) {
                put(buf, pos, cap, "null", 4);
            } else {
                char cut[256];
                if (prec >= 0) {
                    snprintf(cut, sizeof(cut), "%.*s", prec < (int)sizeof(cut) ? prec : (int)sizeof(cut) - 1, s);
                    s = cut;
                }
                put(buf, pos, cap, "\"", 1);
                sbx_json_escape(buf, pos, cap, s);
                put(buf, pos, cap, "\"", 1);
            }
            break;
        }
        default:
            return;
        }
        fmt++;
        while (*fmt == ' ')
            fmt++;
    }
}

void
sbx_log(int level, const char *msg, const char *fields, ...)
{
    char buf[4096], ts[32];
    size_t pos = 0, cap = sizeof(buf) - 2; /* room for "}\n" */
    int saved_errno = errno, n;
    va_list ap;

    if (level < log_level)
        return;
    sbx_time_iso8601(sbx_time_wall_ms(), ts);
    n = snprintf(buf, cap, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"role\":\"%s\",\"msg\":\"", ts, level_names[level],
                 (int)getpid(), log_role);
    pos = (size_t)n;
    sbx_json_escape(buf, &pos, cap, msg);
    put(buf, &pos, cap, "\"", 1);
    if (fields != NULL) {
        va_start(ap, fields);
        put_fields(buf, &pos, cap, fields, ap);
        va_end(ap);
    }
    buf[pos++] = '}';
    buf[pos++] = '\n';
    while (write(log_fd, buf, pos) == -1 && errno == EINTR)
        ;
    errno = saved_errno;
}
