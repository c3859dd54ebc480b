/* msgpack encoding of master/worker control messages. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <msgpack.h>

#include "control.h"
#include "sbx.h"

static const char *const type_names[] = {"unknown", "ready", "draining"};

/* msgpack's sbuffer grows with realloc; our messages are tiny, so write into a fixed buffer instead. */
typedef struct {
    char *buf;
    size_t len, cap;
} fixed_t;

static int
fixed_write(void *data, const char *buf, size_t len)
{
    fixed_t *f = data;

    if (f->len + len > f->cap)
        return -1;
    memcpy(f->buf + f->len, buf, len);
    f->len += len;
    return 0;
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

size_t
sbx_control_encode(const sbx_control_t *msg, char *buf, size_t len)
{
    fixed_t f = {buf, 0, len};
    msgpack_packer pk;
    int rc = 0;

    if ((size_t)msg->type >= sbx_nelems(type_names))
        return 0;
    msgpack_packer_init(&pk, &f, fixed_write);
    rc |= msgpack_pack_map(&pk, 4);
    pack_str(&pk, "type");
    pack_str(&pk, type_names[msg->type]);
    pack_str(&pk, "pid");
    rc |= msgpack_pack_int64(&pk, msg->pid);
    pack_str(&pk, "slot");
    rc |= msgpack_pack_int64(&pk, msg->slot);
    pack_str(&pk, "generation");
    rc |= msgpack_pack_int64(&pk, msg->generation);
    return rc == 0 && f.len <= len ? f.len : 0;
}

static bool
key_is(const msgpack_object *k, const char *name)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(name) && memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

static int
int_of(const msgpack_object *v, int64_t *out)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
        *out = (int64_t)v->via.u64;
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = v->via.i64;
    else
        return SBX_ERROR;
    return SBX_OK;
}

int
sbx_control_decode(const char *buf, size_t len, sbx_control_t *msg)
{
    msgpack_unpacked up;
    size_t off = 0;
    int rc = SBX_ERROR;

    memset(msg, 0, sizeof(*msg));
    msgpack_unpacked_init(&up);
    /* msgpack's enum: only a whole object that uses every byte is a message. */
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len || up.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
        if (key_is(k, "type")) {
            if (v->type != MSGPACK_OBJECT_STR)
                goto done;
            for (size_t t = 1; t < sbx_nelems(type_names); t++)
                if (v->via.str.size == strlen(type_names[t]) && memcmp(v->via.str.ptr, type_names[t], v->via.str.size) == 0)
                    msg->type = (sbx_control_type_t)t;
        } else if ((key_is(k, "pid") && int_of(v, &msg->pid) != SBX_OK) || (key_is(k, "slot") && int_of(v, &msg->slot) != SBX_OK) ||
                   (key_is(k, "generation") && int_of(v, &msg->generation) != SBX_OK)) {
            goto done;
        }
    }
    rc = msg->type != SBX_CONTROL_UNKNOWN ? SBX_OK : SBX_ERROR;

done:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int
sbx_control_send(int fd, const sbx_control_t *msg)
{
    char buf[SBX_CONTROL_MAX];
    size_t n = sbx_control_encode(msg, buf, sizeof(buf));

    if (n == 0 || fd < 0)
        return SBX_ERROR;
    while (send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
        if (errno != EINTR)
            return SBX_ERROR;
    }
    return SBX_OK;
}
