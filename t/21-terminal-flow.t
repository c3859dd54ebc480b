# The terminal over time: pings, a vanished client, takeover, shell exit, idle refresh,
# and a reload that must not cut a live terminal.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use SbxTest;
use SbxWS;

my $s = SbxTest->new(yaml => "docker: {image: sandboxd/test:busybox}\n"
      . "sessions: {max_per_ip: 5, idle_timeout: 6s, commands_per_minute: 1000}\nterminal: {ping_interval: 1s}\n"
      . "drain_timeout: 30s\n");
my $port = $s->{port};

sub create {
    my $r = http_req('POST', $s->url('/api/v1/sessions'), content => '{"toolPair":"t"}');
    is($r->{status}, 201, 'session created') or diag $r->{content};
    return json_decode($r->{content})->{sessionId};
}
sub ws {
    my $w = SbxWS->connect($port, "/api/v1/sessions/$_[0]/ws");
    $w && $w->wait_msg('initComplete', 20);
    return $w;
}

my $id = create();
my $ws = ws($id);

# 2. Pings, and a client that stops answering is dropped.
my $pings = $ws->{pings} // 0;
$ws->read_until(qr/never/, 2.5);
cmp_ok(($ws->{pings} // 0) - $pings, '>=', 2, 'the server pings every ping_interval');
my $quiet = SbxWS->connect($port, "/api/v1/sessions/$id/ws"); # takes over from $ws
my $c = $ws->wait_close(5);
is($c && $c->{code}, 1000, 'a second terminal takes over: the first is closed');
like($c && $c->{reason}, qr/another terminal/, 'with a clear reason');
sleep 3.2; # answer no pings (ping every 1 s; dropped after 3 without an answer)
my $t0 = time;
$c = $quiet->wait_close(5);
ok($c, 'a client that answers no pings is dropped') or diag explain $c;

# 3. Activity keeps a session alive past its idle timeout (6 s here).
my $ws2 = ws($id);
for (1 .. 8) { $ws2->send_text("echo tick$_\r"); $ws2->read_until(qr/tick$_\r\n/, 3); sleep 1 }
is(http_get($s->url("/api/v1/sessions/$id"))->{status}, 200, 'terminal activity refreshes the idle timer');

# 4. A reload does not cut a live terminal; old workers drain around it.
$s->signal('HUP');
ok(wait_until(10, sub { $s->log_lines('reloaded') >= 1 }), 'reloaded');
sleep 1;
$ws2->send_text("echo after-reload\r");
ok($ws2->read_until(qr/after-reload\r\n/, 5), 'the terminal keeps working through a reload');

# 5. The shell exits: close 1000 "Container process exited", and the session ends.
$ws2->send_text("exit\r");
$c = $ws2->wait_close(10);
is($c && $c->{code}, 1000, 'exit closes with 1000');
is($c && $c->{reason}, 'Container process exited', 'reason: Container process exited');
ok(wait_until(15, sub { http_get($s->url("/api/v1/sessions/$id"))->{status} == 404 }), 'and the session is reaped');

$s->stop;
is(scalar $s->containers, 0, 'no container left behind');
$s->check_log_clean;
done_testing;
