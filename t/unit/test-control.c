/* Unit tests of the msgpack control-message codec: round trips and hostile input. */
#include "config.h"

#include <msgpack.h>

#include "control.h"
#include "sbx.h"
#include "tap.h"

int
main(void)
{
    sbx_control_t in = {SBX_CONTROL_READY, 4242, 1, 7}, out;
    char buf[SBX_CONTROL_MAX];
    size_t n = sbx_control_encode(&in, buf, sizeof(buf));

    ok(n > 0 && n < 64, "a ready message encodes small (%zu bytes)", n);
    ok(sbx_control_decode(buf, n, &out) == SBX_OK, "and decodes");
    ok(out.type == SBX_CONTROL_READY && out.pid == 4242 && out.slot == 1 && out.generation == 7, "with every field");
    in.type = SBX_CONTROL_DRAINING;
    n = sbx_control_encode(&in, buf, sizeof(buf));
    ok(sbx_control_decode(buf, n, &out) == SBX_OK && out.type == SBX_CONTROL_DRAINING, "draining round-trips");
    ok(sbx_control_encode(&in, buf, 8) == 0, "a buffer too small encodes nothing");

    int bad = 0;
    for (size_t cut = 0; cut < n; cut++)
        bad += sbx_control_decode(buf, cut, &out) == SBX_OK;
    ok(bad == 0, "every truncation is refused");
    ok(sbx_control_decode("\xc1", 1, &out) == SBX_ERROR, "a reserved byte is refused");
    ok(sbx_control_decode("\x93\x01\x02\x03", 4, &out) == SBX_ERROR, "an array is not a message");
    char twice[2 * SBX_CONTROL_MAX];
    memcpy(twice, buf, n);
    memcpy(twice + n, buf, n);
    ok(sbx_control_decode(twice, 2 * n, &out) == SBX_ERROR, "trailing bytes are refused");

    /* Hand-made maps: an unknown key is ignored; a wrong type is refused; an unknown type is refused. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 4), msgpack_pack_str_body(&pk, "type", 4);
    msgpack_pack_str(&pk, 5), msgpack_pack_str_body(&pk, "ready", 5);
    msgpack_pack_str(&pk, 6), msgpack_pack_str_body(&pk, "future", 6);
    msgpack_pack_true(&pk);
    ok(sbx_control_decode(sb.data, sb.size, &out) == SBX_OK && out.type == SBX_CONTROL_READY, "an unknown key is ignored");
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str(&pk, 4), msgpack_pack_str_body(&pk, "type", 4);
    msgpack_pack_str(&pk, 5), msgpack_pack_str_body(&pk, "ready", 5);
    msgpack_pack_str(&pk, 3), msgpack_pack_str_body(&pk, "pid", 3);
    msgpack_pack_str(&pk, 2), msgpack_pack_str_body(&pk, "42", 2);
    ok(sbx_control_decode(sb.data, sb.size, &out) == SBX_ERROR, "a pid that is a string is refused");
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 4), msgpack_pack_str_body(&pk, "type", 4);
    msgpack_pack_str(&pk, 6), msgpack_pack_str_body(&pk, "reboot", 6);
    ok(sbx_control_decode(sb.data, sb.size, &out) == SBX_ERROR, "an unknown type is refused");
    msgpack_sbuffer_destroy(&sb);
    return done_testing();
}
