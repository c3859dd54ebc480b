# The WebSocket terminal as the toolkata frontend uses it: messages, init,
# resize, reconnect with repaint, limits, origin and key checks.
use strict;
use warnings;
use Test::More;
use SbxTest;
use SbxWS;

my $s = SbxTest->new(yaml => "docker: {image: sandboxd/test:busybox}\nallowed_origins: [https://app.example]\n"
      . "sessions: {commands_per_minute: 1000, max_per_ip: 5}\n");
my $port = $s->{port};

sub create {
    my (%body) = @_;
    my $r = http_req('POST', $s->url('/api/v1/sessions'), content => json_encode({ toolPair => 'test', %body }),
        headers => { 'Content-Type' => 'application/json' });
    is($r->{status}, 201, 'session created') or diag $r->{content};
    return json_decode($r->{content})->{sessionId};
}
sub ws { SbxWS->connect($port, "/api/v1/sessions/$_[0]/ws" . ($_[1] // ''), headers => $_[2] // {}) }

my $id = create(init => ['export FOO=from-init', 'cd /tmp']);
my $ws = ws($id, '?cols=100&rows=30', { Origin => 'https://app.example' });
ok($ws, 'WebSocket upgrade from an allowed origin');
my $m = $ws->wait_msg('connected');
is($m && $m->{sessionId}, $id, 'first message: connected with the session id');
$ws->send_text("echo typed-early-\$FOO\r"); # before initComplete: must wait for the init step, then show
$m = $ws->wait_msg('initComplete', 20);
ok($m && $m->{success}, 'initComplete after the init commands, success true');
unlike($ws->{out}, qr/export FOO/, 'init commands and their echo are not shown');
ok($ws->read_until(qr/typed-early-from-init/), 'keystrokes typed before initComplete run after the init commands, and show');

$ws->send_text("echo hello\r");
ok($ws->read_until(qr/\r\nhello\r\n/), 'raw text frame: typing echo hello prints hello');
$ws->send_json({ type => 'input', data => "echo \$FOO \$PWD\r" });
ok($ws->read_until(qr/from-init \/tmp/), '{type:input} works, and init commands ran in the shell');
$ws->send_text("stty size\r");
ok($ws->read_until(qr/30 100/), 'cols and rows from the query size the TTY from the start');
$ws->send_json({ type => 'resize', rows => 40, cols => 120 });
$ws->send_text("stty size\r");
ok($ws->read_until(qr/40 120/), 'resize then stty size prints the new size');
$ws->send_binary("echo bin-\$((6*7))\r");
ok($ws->read_until(qr/bin-42/), 'a binary frame is raw input');
$ws->send_text('{"type":"nonsense","x":1}');
$ws->send_text("\r");
ok($ws->read_until(qr/nonsense/), 'JSON of an unknown type is raw input');
$ws->send_text("printf '\\342\\202\\254uro \\360\\237\\230\\200\\n'\r");
ok($ws->read_until(qr/\x{e2}\x{82}\x{ac}uro \x{f0}\x{9f}\x{98}\x{80}/), 'multi-byte UTF-8 output arrives intact');
my $bins = $ws->{binary_frames} // 0;
$ws->send_text("printf 'x\\377y\\n'\r");
ok($ws->read_until(qr/x\xffy/), 'bytes that are not UTF-8 still arrive');
cmp_ok($ws->{binary_frames} // 0, '>', $bins, 'and they come as a binary frame');
$ws->send_text("cd /tmp && touch marker-file && echo touched\r");
ok($ws->read_until(qr/\r\ntouched/), 'files can be made');

# Reconnect: same shell, recent output repainted.
$ws->close;
my $ws2 = ws($id);
ok($ws2 && $ws2->wait_msg('connected'), 'reconnect to the same session');
ok($ws2->read_until(qr/touched/, 5), 'recent output is repainted on reconnect');
$ws2->send_text("ls /tmp; echo \$FOO\r");
ok($ws2->read_until(qr/marker-file.*from-init/s), 'the shell state is kept across reconnects');

# Oversize frame: error message, close 1009, the session lives on.
$ws2->send_text('x' x 2000);
my $err = $ws2->wait_msg('error');
like($err && $err->{message}, qr/too large/i, 'an oversize frame gets an error message');
my $c = $ws2->wait_close;
is($c && $c->{code}, 1009, 'and close 1009');
my $ws3 = ws($id);
ok($ws3 && $ws3->wait_msg('connected'), 'the session survives an oversize frame');

$ws3->close;

# Refusals before the upgrade.
my ($none, $st, $body) = ws($id, '', { Origin => 'https://evil.example' });
is($st, 403, 'a page from another origin is refused with 403');
like($body, qr/"error":"Forbidden"/, '403 is JSON');
($none, $st) = ws('AAAAAAAAAAAAAAAAAAAAAA');
is($st, 404, 'an unknown session is 404 before upgrading');
my $r = http_get($s->url("/api/v1/sessions/$id/ws"));
is($r->{status}, 400, 'a plain GET of the WebSocket route is 400');

http_req('DELETE', $s->url("/api/v1/sessions/$id"));
($none, $st) = ws($id);
is($st, 404, 'a deleted session is 404');

# The API key: a browser can only put it in the query.
my $k = SbxTest->new(yaml => "docker: {image: sandboxd/test:busybox}\napi_key: sekrit\nsessions: {commands_per_minute: 5}\n");
$r = http_req('POST', $k->url('/api/v1/sessions'), content => '{"toolPair":"t"}', headers => { 'X-API-Key' => 'sekrit' });
my $kid = json_decode($r->{content})->{sessionId};
($none, $st) = SbxWS->connect($k->{port}, "/api/v1/sessions/$kid/ws");
is($st, 401, 'no key: 401');
my $kws = SbxWS->connect($k->{port}, "/api/v1/sessions/$kid/ws?api_key=sekrit");
ok($kws && $kws->wait_msg('connected'), '?api_key= opens the terminal');

# Commands per minute (5 here): excess input gets an error, not silence.
$kws->wait_msg('initComplete');
$kws->send_text("echo c-\$((1+$_))\r") for 1 .. 5;
ok($kws->read_until(qr/c-6/), 'commands within the limit run');
$kws->send_text("echo over-\$((2*50))\r");
my $e = $kws->wait_msg('error');
like($e && $e->{message}, qr/Too many commands: at most 5 per minute/, 'the next one gets an error message naming the limit');
ok(!$kws->read_until(qr/over-100/, 1), 'and is not run');
$kws->close;
http_req('DELETE', $k->url("/api/v1/sessions/$kid"), headers => { 'X-API-Key' => 'sekrit' });

$k->stop;
$s->stop;
is(scalar($s->containers) + scalar($k->containers), 0, 'no container left behind');
$s->check_log_clean;
done_testing;
