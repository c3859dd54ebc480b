# The session API end to end against the real Docker engine under runsc:
# create -> GET -> every hardening field in `docker inspect` -> DELETE ->
# container gone -> 404; /health's count; the API key (header, Bearer, and
# the sendBeacon body of /destroy); environments; wsUrl from Host and the
# scheme; every 4xx case of POST /sessions.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use SbxTest;
use SbxSession;

my $ISO = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
my $ID  = qr/^[A-Za-z0-9_-]{22}$/;

sub iso_ms {
    my ($t) = @_;
    my ($y, $mo, $d, $h, $mi, $s, $ms) = $t =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)Z$/ or return undef;
    require Time::Local;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) * 1000 + $ms;
}

# Server 1: default container limits, two environments, no key, no trusted proxy.
my $s = SbxTest->new(workers => 2, yaml => <<'YAML');
docker: {image: sandboxd/test:busybox}
sessions: {max_per_ip: 10, per_ip_per_hour: 100}
environments:
  - name: bash
    image: sandboxd/test:busybox
    description: Bash shell
    category: shell
    defaultTimeout: 600000
  - name: git
    description: Git in a shell
    category: vcs
    defaultTimeout: 15m
YAML

is(health_containers($s), 0, '/health: 0 containers before any session');

# --- create ---------------------------------------------------------------
my ($st, $j, $r) = create_session($s, body => { toolPair => 'git-jj' });
is($st, 201, 'POST /sessions is 201') or diag $r->{content};
my $sid = $j->{sessionId} // '';
like($sid, $ID, 'sessionId is 22 characters of base64url');
is($j->{status}, 'RUNNING', 'status RUNNING');
like($j->{createdAt}, $ISO, 'createdAt is ISO-8601 with ms');
like($j->{expiresAt}, $ISO, 'expiresAt is ISO-8601 with ms');
is($j->{wsUrl}, "ws://127.0.0.1:$s->{port}/api/v1/sessions/$sid/ws", 'wsUrl is ws://HOST/api/v1/sessions/ID/ws');
is(iso_ms($j->{expiresAt}) - iso_ms($j->{createdAt}), 600000, 'lifetime is the default environment\'s defaultTimeout');
ok(abs(iso_ms($j->{createdAt}) - time * 1000) < 10000, 'createdAt is now');
is($r->{headers}{'content-type'}, 'application/json', '201 is application/json');

# --- GET ------------------------------------------------------------------
my ($gst, $g) = get_session($s, $sid);
is($gst, 200, 'GET /sessions/:id is 200');
is_deeply($g, { sessionId => $sid, status => 'RUNNING', createdAt => $j->{createdAt}, expiresAt => $j->{expiresAt}, toolPair => 'git-jj' },
    'GET answers {sessionId, status, createdAt, expiresAt, toolPair}');

ok(wait_until(5, sub { (health_containers($s) // -1) == 1 }), '/health: 1 container with one session');

# --- docker inspect: every hardening field ---------------------------------
my $cid = session_container($s, $sid);
ok($cid, 'the session has a container labelled with its id and our host');
my $i = docker_inspect($cid // 'none') // {};
my $hc = $i->{HostConfig} // {};
my $cf = $i->{Config} // {};
ok($i->{State}{Running}, 'container is running');
is($hc->{Runtime}, 'runsc', 'HostConfig.Runtime runsc');
is($hc->{NetworkMode}, 'none', 'HostConfig.NetworkMode none');
ok($cf->{NetworkDisabled}, 'Config.NetworkDisabled');
ok($hc->{ReadonlyRootfs}, 'HostConfig.ReadonlyRootfs');
is_deeply($hc->{CapDrop}, ['ALL'], 'HostConfig.CapDrop [ALL]');
ok(!$hc->{CapAdd} || !@{ $hc->{CapAdd} }, 'no CapAdd');
ok(!$hc->{Privileged}, 'not privileged');
ok((grep { $_ eq 'no-new-privileges' || $_ eq 'no-new-privileges:true' } @{ $hc->{SecurityOpt} // [] }), 'SecurityOpt no-new-privileges');
is($hc->{Memory}, 128 * 1024 * 1024, 'Memory is the default 128m');
is($hc->{MemorySwap}, $hc->{Memory}, 'MemorySwap = Memory (no swap)');
is($hc->{NanoCpus}, 500_000_000, 'NanoCpus 0.5 CPU');
cmp_ok($hc->{PidsLimit} // 0, '>', 50, 'PidsLimit under runsc is above container.pids (gVisor host threads)');
my %ul = map { $_->{Name} => $_ } @{ $hc->{Ulimits} // [] };
is($ul{nofile}{Soft}, 256, 'Ulimit nofile 256');
is($ul{fsize}{Soft}, 64 * 1024 * 1024, 'Ulimit fsize 64m');
is($ul{nproc}{Soft}, 50, 'Ulimit nproc = container.pids');
is($ul{nproc}{Hard}, 50, 'Ulimit nproc hard = container.pids');
like($hc->{Tmpfs}{'/tmp'} // '', qr/(^|,)size=\d+/, 'tmpfs /tmp, sized');
like($hc->{Tmpfs}{'/tmp'} // '', qr/nosuid/, 'tmpfs /tmp nosuid');
like($hc->{Tmpfs}{'/tmp'} // '', qr/nodev/, 'tmpfs /tmp nodev');
like($hc->{Tmpfs}{'/home/sandbox'} // '', qr/(^|,)size=\d+/, 'tmpfs /home/sandbox, sized');
like($hc->{Tmpfs}{'/home/sandbox'} // '', qr/uid=1000/, 'tmpfs /home/sandbox owned by the sandbox user');
is($cf->{User}, '1000:1000', 'Config.User 1000:1000 (non-root)');
is($hc->{LogConfig}{Type}, 'none', 'LogConfig none');
ok($cf->{Tty} && $cf->{OpenStdin}, 'Tty and OpenStdin');
is($cf->{Image}, 'sandboxd/test:busybox', 'image of the environment');
my $lb = $cf->{Labels} // {};
is($lb->{'sandboxd.session'}, $sid, 'label sandboxd.session = id');
is($lb->{'sandboxd.host'}, $s->{host_id}, 'label sandboxd.host = host_id');
ok(($lb->{'sandboxd.created'} // '') =~ /^\d{13}$/ && abs($lb->{'sandboxd.created'} - time * 1000) < 60000, 'label sandboxd.created = ms now');
is($lb->{'sandboxd.environment'}, 'bash', 'label sandboxd.environment = default (first) environment');
is($lb->{'sandboxd.kind'}, 'session', 'label sandboxd.kind = session');

# Inside: the settings hold (uid, read-only root, writable home, no network).
my ($ec, $out) = docker_cmd('exec', $cid // 'none', 'sh', '-c',
    'id -u; touch /x 2>/dev/null || echo ro-ok; touch /home/sandbox/f && echo home-ok; touch /tmp/f && echo tmp-ok; echo net: $(ls /sys/class/net)');
like($out, qr/^1000$/m, 'exec: runs as uid 1000');
like($out, qr/^ro-ok$/m, 'exec: root filesystem read-only');
like($out, qr/^home-ok$/m, 'exec: home is writable');
like($out, qr/^tmp-ok$/m, 'exec: /tmp is writable');
like($out, qr/^net: lo$/m, 'exec: no network interface but loopback') or diag $out;
($ec, $out) = docker_cmd('exec', '-u', '0', $cid // 'none', 'sh', '-c', 'touch /bin/x');
like($out, qr/Read-only file system/, 'exec as uid 0: the root filesystem is read-only (EROFS, not just permissions)') or diag $out;

# --- DELETE -----------------------------------------------------------------
my ($dst, $d) = delete_session($s, $sid);
is($dst, 200, 'DELETE /sessions/:id is 200');
is_deeply($d, { success => JSON::PP::true }, 'DELETE answers {success: true}');
ok(!docker_exists($cid), 'container removed before DELETE answered');
($gst, $g) = get_session($s, $sid);
is($gst, 404, 'GET after DELETE is 404');
is($g->{error}, 'NotFound', 'error NotFound');
ok(wait_until(5, sub { (health_containers($s) // -1) == 0 }), '/health: back to 0 containers');
($dst, $d) = delete_session($s, $sid);
is($dst, 200, 'DELETE again is 200');
ok($d && $d->{success}, 'DELETE of a gone session: success true');
($dst, $d) = delete_session($s, 'AAAAAAAAAAAAAAAAAAAAAA');
is($dst, 200, 'DELETE of an unknown id is 200 with success') && ok($d->{success}, 'unknown id: success true');
($dst) = api($s, 'POST', "/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA/destroy");
is($dst, 200, 'POST /destroy of an unknown id, no key configured, is 200');

# --- environments -------------------------------------------------------------
my ($est, $e) = api($s, 'GET', '/api/v1/environments');
is($est, 200, 'GET /environments is 200');
is_deeply($e, { environments => [
    { name => 'bash', description => 'Bash shell', category => 'shell', defaultTimeout => 600000 },
    { name => 'git', description => 'Git in a shell', category => 'vcs', defaultTimeout => 900000 },
] }, 'environments lists name, description, category, defaultTimeout (no image)');

($st, $j) = create_session($s, body => { toolPair => 'git-jj', environment => 'git' });
is($st, 201, 'create in the second environment');
is(iso_ms($j->{expiresAt}) - iso_ms($j->{createdAt}), 900000, 'its lifetime is that environment\'s defaultTimeout');
$cid = session_container($s, $j->{sessionId});
$i = docker_inspect($cid // 'none') // {};
is($i->{Config}{Labels}{'sandboxd.environment'}, 'git', 'its container is labelled with the environment');
is($i->{Config}{Image}, 'sandboxd/test:busybox', 'an environment without image runs docker.image');
delete_session($s, $j->{sessionId});
ok(!docker_exists($cid // 'none'), 'and is removed by DELETE');

($st, $j) = create_session($s, body => { toolPair => 'git-jj', timeout => 120000, init => ['echo hi'] });
is($st, 201, 'create with timeout and init');
is(iso_ms($j->{expiresAt}) - iso_ms($j->{createdAt}), 120000, 'timeout (ms) sets the lifetime');
delete_session($s, $j->{sessionId});

# --- wsUrl: Host header and scheme ---------------------------------------------
my $body = '{"toolPair":"git-jj"}';
my ($rst, $rh, $rb) = raw_http($s, "POST /api/v1/sessions HTTP/1.1\r\nHost: sandbox.example.com\r\nContent-Type: application/json\r\n"
      . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body");
is($rst, 201, 'create with Host: sandbox.example.com');
my $rj = json_decode($rb) // {};
is($rj->{wsUrl}, "ws://sandbox.example.com/api/v1/sessions/" . ($rj->{sessionId} // '') . "/ws", 'wsUrl uses the Host header');
delete_session($s, $rj->{sessionId}) if $rj->{sessionId};

($st, $j) = create_session($s, headers => { 'X-Forwarded-Proto' => 'https' });
is($st, 201, 'create with X-Forwarded-Proto: https from an untrusted peer');
like($j->{wsUrl} // '', qr{^ws://}, 'an untrusted X-Forwarded-Proto does not make wss');
delete_session($s, $j->{sessionId}) if $j->{sessionId};

# --- every 4xx of POST /sessions -------------------------------------------------
my @bad = (
    ['invalid JSON',                '{"toolPair": "git-jj"',                    400, 'BadRequest'],
    ['empty body',                  '',                                           400, 'BadRequest'],
    ['a JSON array',                '["git-jj"]',                                 400, 'BadRequest'],
    ['a JSON string',               '"git-jj"',                                   400, 'BadRequest'],
    ['missing toolPair',            '{}',                                         400, 'BadRequest'],
    ['toolPair a number',           '{"toolPair": 7}',                            400, 'BadRequest'],
    ['toolPair null',               '{"toolPair": null}',                         400, 'BadRequest'],
    ['environment a number',        '{"toolPair": "x", "environment": 1}',       400, 'BadRequest'],
    ['environment unknown',         '{"toolPair": "x", "environment": "cobol"}', 400, 'BadRequest'],
    ['init a string',               '{"toolPair": "x", "init": "ls"}',           400, 'BadRequest'],
    ['init an array of numbers',    '{"toolPair": "x", "init": [1, 2]}',         400, 'BadRequest'],
    ['init an object',              '{"toolPair": "x", "init": {"a": "b"}}',     400, 'BadRequest'],
    ['timeout 0',                   '{"toolPair": "x", "timeout": 0}',           400, 'BadRequest'],
    ['timeout negative',            '{"toolPair": "x", "timeout": -5}',          400, 'BadRequest'],
    ['timeout 1800001',             '{"toolPair": "x", "timeout": 1800001}',     400, 'BadRequest'],
    ['timeout a string',            '{"toolPair": "x", "timeout": "1000"}',      400, 'BadRequest'],
    ['timeout a boolean',           '{"toolPair": "x", "timeout": true}',        400, 'BadRequest'],
    ['body over 16 KiB',            '{"toolPair": "x", "pad": "' . ('a' x 17000) . '"}', 413, 'PayloadTooLarge'],
);
for my $c (@bad) {
    my ($name, $raw, $code, $err) = @$c;
    my ($bst, $bj, $br) = api($s, 'POST', '/api/v1/sessions', body => $raw);
    is($bst, $code, "POST /sessions with $name is $code");
    ok($bj && ($bj->{error} // '') eq $err && length($bj->{message} // ''), "  ... error $err with a message")
      or diag $br->{content};
}
my ($bst) = create_session($s, body => '{"toolPair": "x", "timeout": 1800000}');
is($bst, 201, 'timeout 1800000 (the maximum) is accepted');
($bst) = create_session($s, body => '{"toolPair": "x", "timeout": 1}');
is($bst, 201, 'timeout 1 (the minimum) is accepted');
cleanup_sessions($s);
ok(wait_until(10, sub { !$s->containers }), 'no container left after the 4xx cases');

($gst, $g) = get_session($s, 'AAAAAAAAAAAAAAAAAAAAAA');
is($gst, 404, 'GET an unknown id is 404');
is($g->{error}, 'NotFound', '  ... NotFound');
($gst, $g) = get_session($s, 'not-an-id');
is($gst, 404, 'GET a malformed id is 404');
is($g->{error}, 'NotFound', '  ... NotFound');

cleanup_sessions($s);
is($s->stop, 0, 'server 1 stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'server 1 left no container behind');
diag_log($s);

# Server 2: an API key, a trusted proxy, custom container limits.
my $K = 'k3y-' . int(rand(1e9));
my $s2 = SbxTest->new(workers => 2, yaml => <<"YAML");
docker: {image: sandboxd/test:busybox}
api_key: $K
trusted_proxies: [127.0.0.1]
sessions: {max_per_ip: 10, per_ip_per_hour: 100}
container: {memory: 96m, cpus: 0.25, pids: 40, nofile: 200}
YAML

($st, $j) = create_session($s2);
is($st, 401, 'api_key set: create without a key is 401');
is($j->{error}, 'Unauthorized', '  ... Unauthorized');
($st, $j) = create_session($s2, headers => { 'X-API-Key' => "$K-wrong" });
is($st, 401, 'create with a wrong X-API-Key is 401');
($st, $j) = create_session($s2, headers => { 'Authorization' => "Bearer nope" });
is($st, 401, 'create with a wrong Bearer token is 401');
($st, $j) = create_session($s2, headers => { 'Authorization' => "Bearer $K" });
is($st, 201, 'create with Authorization: Bearer KEY is 201');
my $sid_b = $j->{sessionId};
($st, $j) = create_session($s2, headers => { 'X-API-Key' => $K, 'X-Forwarded-Proto' => 'https' });
is($st, 201, 'create with X-API-Key is 201');
my $sid2 = $j->{sessionId} // '';
like($j->{wsUrl} // '', qr{^wss://127\.0\.0\.1:\d+/api/v1/sessions/\Q$sid2\E/ws$}, 'X-Forwarded-Proto https from a trusted proxy makes wss');

my $c2 = session_container($s2, $sid2);
$i = docker_inspect($c2 // 'none') // {};
$hc = $i->{HostConfig} // {};
is($hc->{Memory}, 96 * 1024 * 1024, 'container.memory 96m -> Memory');
is($hc->{MemorySwap}, 96 * 1024 * 1024, 'container.memory 96m -> MemorySwap');
is($hc->{NanoCpus}, 250_000_000, 'container.cpus 0.25 -> NanoCpus');
%ul = map { $_->{Name} => $_ } @{ $hc->{Ulimits} // [] };
is($ul{nproc}{Soft}, 40, 'container.pids 40 -> Ulimit nproc');
is($ul{nofile}{Soft}, 200, 'container.nofile 200 -> Ulimit nofile');
cmp_ok($hc->{PidsLimit} // 0, '>', 40, 'PidsLimit above container.pids');

($gst) = get_session($s2, $sid2);
is($gst, 401, 'GET without a key is 401');
($gst) = get_session($s2, $sid2, headers => { 'X-API-Key' => $K });
is($gst, 200, 'GET with the key is 200');
($dst) = delete_session($s2, $sid2);
is($dst, 401, 'DELETE without a key is 401');
ok(docker_exists($c2), '  ... and the container is still there');
($dst) = api($s2, 'POST', "/api/v1/sessions/$sid2/destroy");
is($dst, 401, 'POST /destroy without a key is 401');
($dst) = api($s2, 'POST', "/api/v1/sessions/$sid2/destroy", body => { apiKey => "$K-wrong" });
is($dst, 401, 'POST /destroy with a wrong body apiKey is 401');
ok(docker_exists($c2), '  ... and the container is still there');
# navigator.sendBeacon sends text/plain; the key is in the JSON body.
($dst, $d) = api($s2, 'POST', "/api/v1/sessions/$sid2/destroy", body => { apiKey => $K }, headers => { 'Content-Type' => 'text/plain;charset=UTF-8' });
is($dst, 200, 'POST /destroy with {"apiKey": KEY} in the body is 200');
ok($d && $d->{success}, '  ... success true');
ok(!docker_exists($c2), '  ... and the container is gone');
($gst, $g) = get_session($s2, $sid2, headers => { 'X-API-Key' => $K });
is($gst, 404, 'GET after /destroy is 404');
($dst) = delete_session($s2, $sid_b, headers => { 'Authorization' => "Bearer $K" });
is($dst, 200, 'DELETE with Bearer is 200');

cleanup_sessions($s2, headers => { 'X-API-Key' => $K });
is($s2->stop, 0, 'server 2 stops with status 0');
$s2->check_log_clean;
is(scalar(() = $s2->containers), 0, 'server 2 left no container behind');
diag_log($s2);
done_testing;
