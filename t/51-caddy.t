# Caddy in front of sandboxd (conf/Caddyfile): `caddy validate` passes on the
# production file; then caddy runs that same file (its site address and upstream
# set through SANDBOXD_DOMAIN / SANDBOXD_UPSTREAM: plain HTTP, and HTTPS from a
# local CA, both on loopback) under a test-only global block, and a client on
# 127.0.0.2 creates sessions and runs a command over the WebSocket through it.
# sandboxd trusts only 127.0.0.1 (Caddy), so the session's registry record must
# name 127.0.0.2, and nobody's own X-Forwarded-For, direct or through Caddy, is
# believed. Needs caddy and curl (Debian packages).
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time);
use SbxTest;
use SbxWS;

my $srcdir = $ENV{SBX_SRCDIR} // '.';
my $prod = "$srcdir/conf/Caddyfile";
my $caddy = (grep { -x "$_/caddy" } split /:/, $ENV{PATH})[0];
unless ($caddy) {
    fail('caddy is installed (apt-get install -y caddy)');
    done_testing;
    exit;
}
$caddy .= '/caddy';
ok(-f $prod, 'conf/Caddyfile exists');

my $tmp = tempdir('sbx-caddy-XXXXXX', TMPDIR => 1, CLEANUP => 1);
# Caddy keeps state under HOME / XDG dirs: keep it in the temp dir.
my %cenv = (HOME => $tmp, XDG_DATA_HOME => "$tmp/data", XDG_CONFIG_HOME => "$tmp/config");

sub run_caddy {    # -> (exit status, output)
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $cenv{$_} for keys %cenv;
        open STDERR, '>&', \*STDOUT;
        exec $caddy, @args or die "exec: $!";
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    return ($?, $out // '');
}

# --- 1. the production file validates (with its defaults: a real domain, automatic TLS) ---
{
    local $ENV{SANDBOXD_DOMAIN};
    local $ENV{SANDBOXD_UPSTREAM};
    delete $ENV{SANDBOXD_DOMAIN};
    delete $ENV{SANDBOXD_UPSTREAM};
    my ($rc, $out) = run_caddy('validate', '--config', $prod, '--adapter', 'caddyfile');
    is($rc, 0, 'caddy validate --config conf/Caddyfile --adapter caddyfile exits 0') or diag $out;
    like($out, qr/^Valid configuration$/m, '... and says "Valid configuration"');
}

# --- 2. sandboxd trusting exactly Caddy ---------------------------------------------------
my $s = SbxTest->new(yaml => "docker: {image: sandboxd/test:busybox}\ntrusted_proxies: [127.0.0.1]\n"
      . "sessions: {max_per_ip: 10, per_ip_per_hour: 100}\n");
my $cport = free_port();     # plain HTTP
my $tport = free_port();     # HTTPS with a certificate from caddy's own local CA
my $caddyfile = "$tmp/Caddyfile";
open my $cf, '>', $caddyfile or die "$caddyfile: $!";
# Test-only global options, then the production file itself (it has no global block
# so that it can be imported). Its site address becomes two loopback listeners: plain
# HTTP, and HTTPS from a local CA kept in the temp dir (never installed in the
# system's trust store; no ACME, no network, no redirect server on port 80). A site
# address names a host to match, not an address to bind: default_bind keeps caddy on
# loopback.
print $cf <<"EOF";
{
	admin off
	default_bind 127.0.0.1
	local_certs
	skip_install_trust
	auto_https disable_redirects
	storage file_system $tmp/storage
	servers {
		protocols h1 h2
	}
}
import $prod
EOF
close $cf;

my $clog = "$tmp/caddy.log";
my $cpid = fork // die "fork: $!";
if ($cpid == 0) {
    $ENV{$_} = $cenv{$_} for keys %cenv;
    $ENV{SANDBOXD_DOMAIN} = "http://127.0.0.1:$cport, https://127.0.0.1:$tport";
    $ENV{SANDBOXD_UPSTREAM} = "127.0.0.1:$s->{port}";
    open STDOUT, '>', $clog or die;
    open STDERR, '>&', \*STDOUT or die;
    exec $caddy, 'run', '--config', $caddyfile, '--adapter', 'caddyfile' or die "exec: $!";
}
sub caddy_log { open my $fh, '<', $clog or return ''; local $/; <$fh> }
sub stop_caddy {
    return unless $cpid;
    kill 'TERM', $cpid;
    my $gone = wait_until(5, sub { waitpid($cpid, WNOHANG) == $cpid });
    unless ($gone) { kill 'KILL', $cpid; waitpid($cpid, 0) }
    undef $cpid;
    return $gone;
}
END { stop_caddy() if $cpid }

# (The probe is closed at once: a connection that never sends a request holds up
# caddy's graceful stop for 5 s.)
my $up = wait_until(10, sub {
    for my $p ($cport, $tport) { my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p", Timeout => 1) or return 0; close $c }
    1;
});
ok($up, "caddy runs conf/Caddyfile on http://127.0.0.1:$cport and https://127.0.0.1:$tport")
  or BAIL_OUT("caddy did not start:\n" . caddy_log());

# HTTP clients from chosen loopback addresses.
sub ua_from { HTTP::Tiny->new(timeout => 60, keep_alive => 0, local_address => $_[0]) }
my $via = "http://127.0.0.1:$cport";
my $c2 = ua_from('127.0.0.2');
my $c3 = ua_from('127.0.0.3');

sub create {
    my ($ua, $base, %h) = @_;
    my $r = $ua->request('POST', "$base/api/v1/sessions",
        { content => '{"toolPair":"caddy"}', headers => { 'Content-Type' => 'application/json', %h } });
    return ($r, json_decode($r->{content} // '') // {});
}
sub ip_of { my $v = $s->{redis}->cli('HGET', "sandboxd:session:$_[0]", 'ip'); chomp $v; $v }

my $r = $c2->get("$via/health");
is($r->{status}, 200, 'GET /health through caddy');
is($r->{headers}{'x-content-type-options'}, 'nosniff', 'X-Content-Type-Options: nosniff');
like($r->{headers}{'strict-transport-security'} // '', qr/^max-age=\d{7,}/, 'Strict-Transport-Security max-age');
is($r->{headers}{'x-frame-options'}, 'DENY', 'X-Frame-Options: DENY');
is($r->{headers}{'content-security-policy'}, "frame-ancestors 'none'", "CSP is frame-ancestors 'none' only (the page keeps its scripts)");
ok($r->{headers}{'referrer-policy'}, 'Referrer-Policy set');
ok(!exists $r->{headers}{server}, 'no Server header');

my @ids;
# --- 3. create through caddy: the record names the client, not caddy --------------------
my ($cr, $j) = create($c2, $via);
is($cr->{status}, 201, 'POST /api/v1/sessions through caddy from 127.0.0.2: 201') or diag $cr->{content};
my $id = $j->{sessionId} // '';
push @ids, $id;
is(ip_of($id), '127.0.0.2', 'HGET sandboxd:session:<id> ip is 127.0.0.2 (the client), not 127.0.0.1 (caddy)');
is($j->{wsUrl}, "ws://127.0.0.1:$cport/api/v1/sessions/$id/ws", 'wsUrl: ws:// (plain HTTP) and caddy\'s host:port');

# --- 4. the terminal through caddy -------------------------------------------------------
# SbxWS connects from the default address; this opens the same client from another one.
sub ws_from {
    my ($local, $port, $path) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", LocalAddr => $local, Timeout => 5) or return;
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    print $sock "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n\r\n";
    my $ws = bless { sock => $sock, buf => '', out => '', msgs => [], closed => undef }, 'SbxWS';
    my $deadline = time + 10;
    while ($ws->{buf} !~ /\r\n\r\n/) { return if time > $deadline || !$ws->_fill(1) }
    my ($head, $rest) = split /\r\n\r\n/, $ws->{buf}, 2;
    return unless $head =~ m{^HTTP/1\.1 101 };
    $ws->{buf} = $rest;
    return $ws;
}
my $ws = ws_from('127.0.0.2', $cport, "/api/v1/sessions/$id/ws?cols=80&rows=24");
ok($ws, 'WebSocket upgrade through caddy: 101');
SKIP: {
    skip 'no WebSocket', 5 unless $ws;
    my $m = $ws->wait_msg('connected');
    is($m && $m->{sessionId}, $id, 'connected message through caddy');
    # Keystrokes sent before initComplete run, but their echo is hidden with the init step's.
    $m = $ws->wait_msg('initComplete', 20);
    ok($m && $m->{success}, 'initComplete through caddy');
    $ws->send_text("echo via-\$((40+2))-caddy\r");
    ok($ws->read_until(qr/\r\nvia-42-caddy\r\n/, 15), 'echo via-$((40+2))-caddy runs in the sandbox; via-42-caddy comes back through caddy')
      or diag explain [$ws->{out}, $ws->{closed}];

    # Keystroke echo round trip through caddy, beside a direct connection (diagnostic
    # only). Each new terminal takes the session over from the one before.
    my %lat;
    for my $c (['caddy', sub { ws_from('127.0.0.2', $cport, "/api/v1/sessions/$id/ws") }],
        ['direct', sub { SbxWS->connect($s->{port}, "/api/v1/sessions/$id/ws") }]) {
        my $w = $c->[1]->() or next;
        $w->wait_msg('connected');
        my @t;
        for my $i (1 .. 15) {
            my $tag = sprintf 'k%s%02d', substr($c->[0], 0, 1), $i;
            $w->{out} = '';
            my $t0 = time;
            $w->send_text($tag);
            $w->read_until(qr/\Q$tag\E/, 5) or last;
            push @t, (time - $t0) * 1000;
            $w->send_text("\x15");    # ^U: clear the line
        }
        @t = sort { $a <=> $b } @t;
        $lat{ $c->[0] } = @t == 15 ? sprintf('%.2f ms', $t[7]) : 'n/a';
        $w->close;
    }
    diag("keystroke echo, median of 15: through caddy $lat{caddy}, direct $lat{direct}");
    my $again = ws_from('127.0.0.2', $cport, "/api/v1/sessions/$id/ws");
    ok($again && $again->wait_msg('connected'), 'a reconnect through caddy (after a direct terminal took over)');
    if ($again) {
        $again->send_text("echo back-\$((1+1))\r");
        ok($again->read_until(qr/back-2/, 10), '... runs commands');
        $again->close;
    } else {
        fail('... runs commands');
    }
}

# --- 4b. over TLS: X-Forwarded-Proto https from caddy makes wsUrl wss ---------------------
# curl (not HTTP::Tiny, which would need IO::Socket::SSL); -k: the local CA is not trusted.
{
    my $out = `curl -sk --max-time 20 --interface 127.0.0.2 -D - -o - -X POST -H 'Content-Type: application/json' --data '{"toolPair":"tls"}' https://127.0.0.1:$tport/api/v1/sessions 2>&1`;
    my ($head, $body) = split /\r\n\r\n/, $out, 2;
    like($head // '', qr{^HTTP/\S+ 201}, 'POST /api/v1/sessions through caddy over HTTPS: 201') or diag $out;
    like($head // '', qr/^strict-transport-security: max-age=\d+/mi, 'HSTS over HTTPS');
    my $tj = json_decode($body // '') // {};
    my $tid = $tj->{sessionId} // '';
    push @ids, $tid if length $tid;
    is($tj->{wsUrl}, "wss://127.0.0.1:$tport/api/v1/sessions/$tid/ws",
        'wsUrl is wss:// (sandboxd believes X-Forwarded-Proto from caddy, its trusted proxy)');
    is(ip_of($tid || 'x'), '127.0.0.2', 'and its record names the client, 127.0.0.2');
}

# --- 5. X-Forwarded-For from an untrusted peer, directly: ignored ------------------------
($cr, $j) = create($c3, $s->url(''), 'X-Forwarded-For' => '203.0.113.9', 'X-Forwarded-Proto' => 'https');
is($cr->{status}, 201, 'POST directly to sandboxd from 127.0.0.3 with a forged X-Forwarded-For: 201') or diag $cr->{content};
push @ids, $j->{sessionId} // ();
is(ip_of($j->{sessionId} // 'x'), '127.0.0.3', 'its record says 127.0.0.3 (the untrusted peer), not 203.0.113.9');
like($j->{wsUrl} // '', qr{^ws://}, 'and a forged X-Forwarded-Proto: https from it does not make wsUrl wss');

# --- 6. a client's own X-Forwarded-For through caddy: not believed ------------------------
($cr, $j) = create($c2, $via, 'X-Forwarded-For' => '203.0.113.9', 'X-Forwarded-Proto' => 'https');
is($cr->{status}, 201, 'POST through caddy from 127.0.0.2 with its own X-Forwarded-For: 203.0.113.9: 201') or diag $cr->{content};
push @ids, $j->{sessionId} // ();
is(ip_of($j->{sessionId} // 'x'), '127.0.0.2', 'its record says 127.0.0.2: caddy replaced (or appended to) the client\'s header');
like($j->{wsUrl} // '', qr{^ws://127\.0\.0\.1:$cport/}, 'the client\'s X-Forwarded-Proto: https does not pass caddy either (ws://)');

my @created = map { $_->{ip} } $s->log_lines('session created');
is_deeply([sort @created], [sort qw(127.0.0.2 127.0.0.2 127.0.0.3 127.0.0.2)],
    'sandboxd logged the four creations as 127.0.0.2 (http), 127.0.0.2 (https), 127.0.0.3, 127.0.0.2')
  or diag "@created";

# --- the end: caddy stops, sessions go, no container is left -----------------------------
ok(stop_caddy(), 'caddy stops on SIGTERM within 5 s') or diag join "\n", grep { defined } (split /\n/, caddy_log())[-8 .. -1];
my @err = grep { /"level":"(?:error|fatal|panic)"/ } split /\n/, caddy_log();
ok(!@err, 'caddy logged no error') or diag join "\n", @err[0 .. ($#err < 5 ? $#err : 5)];
my $ua = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
for my $sid (@ids) {
    my $d = $ua->request('DELETE', $s->url("/api/v1/sessions/$sid"));
    is($d->{status}, 200, "DELETE session $sid") or diag $d->{content};
}
ok(wait_until(15, sub { !$s->containers }), 'no container left behind');
$s->stop;
$s->check_log_clean;
done_testing;
