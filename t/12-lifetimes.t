# Lifetimes: idle expiry, max lifetime (config and the request's timeout),
# orphaned containers of this host removed (young ones and other hosts'
# left alone), and a session whose container died is reaped.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use SbxTest;
use SbxSession;

sub iso_s {
    my ($t) = @_;
    my ($y, $mo, $d, $h, $mi, $s, $ms) = ($t // '') =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)\.(\d+)Z$/ or return undef;
    require Time::Local;
    return Time::Local::timegm($s, $mi, $h, $d, $mo - 1, $y) + $ms / 1000;
}
sub sleep_until { my ($t) = @_; my $d = $t - time; sleep $d if $d > 0 }
sub reaped { my ($s, $why) = @_; scalar grep { ($_->{reason} // '') eq $why } $s->log_lines('reaping session') }

# --- 1. idle_timeout: any request is activity; silence ends the session ---------------
my $s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "sessions: {idle_timeout: 2s, max_per_ip: 10, per_ip_per_hour: 100}\n");
my ($st, $j) = create_session($s);
is($st, 201, 'idle: session created');
my $sid = $j->{sessionId} // 'none';
my $cid = session_container($s, $sid);
my $t0 = iso_s($j->{createdAt}) // time;
sleep_until($t0 + 1.0);
($st) = get_session($s, $sid);
is($st, 200, 'idle: GET at 1 s is 200');
my $last = time;
sleep_until($t0 + 2.6);
($st) = get_session($s, $sid);
is($st, 200, 'idle: GET at 2.6 s (2 s after creation, 1.6 s after the last request) is still 200');
$last = time;
# From here, no request touches the session: watch Docker only.
ok(wait_until(8, sub { !docker_exists($cid) }), 'idle: the container is removed within 8 s of silence');
my $gone = time;
cmp_ok($gone - $last, '>=', 1.9, sprintf('idle: not before idle_timeout (%.1f s after the last request)', $gone - $last));
cmp_ok($gone - $last, '<=', 6, 'idle: within a few seconds of idle_timeout');
my ($g);
($st, $g) = get_session($s, $sid);
is($st, 404, 'idle: GET after expiry is 404');
like($g->{error} // '', qr/^(Expired|NotFound)$/, 'idle: ... Expired or NotFound');
ok(reaped($s, 'idle') >= 1, 'idle: logged "reaping session" with reason idle');
ok(wait_until(3, sub { health_containers($s) == 0 }), 'idle: /health counts 0 containers');

# --- 2. the request's timeout shortens the lifetime --------------------------------------
($st, $j) = create_session($s, body => { toolPair => 'git-jj', timeout => 2000 });
is($st, 201, 'timeout 2000: session created');
$sid = $j->{sessionId} // 'none';
$cid = session_container($s, $sid);
$t0 = iso_s($j->{createdAt}) // time;
is(sprintf('%.3f', iso_s($j->{expiresAt}) - $t0), '2.000', 'timeout 2000: expiresAt = createdAt + 2 s');
# Activity every 0.5 s: idle never triggers; the lifetime does.
my ($alive_ok, $end) = (1, undef);
while (time < $t0 + 8) {
    my $tq = time;
    my ($gs) = get_session($s, $sid);
    if ($gs != 200) { $end = time; last }
    $alive_ok = 0 if $tq > $t0 + 2.05;    # asked after expiresAt, answered 200
    sleep 0.5;
}
ok($alive_ok, 'timeout 2000: 200 while active before expiresAt, never after');
ok(defined $end && $end - $t0 <= 3, sprintf('timeout 2000: 404 soon after 2 s despite activity (%.1f s)', ($end // time) - $t0));
ok(wait_until(5, sub { !docker_exists($cid) }), 'timeout 2000: the container is removed');
ok(reaped($s, 'max lifetime') >= 1, 'timeout 2000: reaped with reason "max lifetime"');
cleanup_sessions($s);
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);

# --- 3. sessions.max_lifetime despite activity ------------------------------------------------
$s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "sessions: {max_lifetime: 3s, max_per_ip: 10, per_ip_per_hour: 100}\n");
($st, $j) = create_session($s, body => { toolPair => 'git-jj', timeout => 600000 });
is($st, 201, 'max_lifetime 3s: session created (asking for 10 min)');
is(sprintf('%.3f', iso_s($j->{expiresAt}) - iso_s($j->{createdAt})), '3.000', 'max_lifetime caps the request\'s timeout: expiresAt = createdAt + 3 s');
$sid = $j->{sessionId} // 'none';
$cid = session_container($s, $sid);
$t0 = iso_s($j->{createdAt}) // time;
($alive_ok, $end) = (1, undef);
my $n200 = 0;
while (time < $t0 + 10) {
    my $tq = time;
    my ($gs) = get_session($s, $sid);
    if ($gs != 200) { $end = time; last }
    $n200++;
    $alive_ok = 0 if $tq > $t0 + 3.05;
    sleep 0.5;
}
cmp_ok($n200, '>=', 4, "max_lifetime: the session answered while active ($n200 GETs)");
ok($alive_ok, 'max_lifetime: never 200 after createdAt + 3 s');
ok(defined $end && $end - $t0 <= 4.5, sprintf('max_lifetime: 404 within ~1 s of 3 s despite activity every 0.5 s (%.1f s)', ($end // time) - $t0));
ok(wait_until(5, sub { !docker_exists($cid) }), 'max_lifetime: the container is removed');
ok(reaped($s, 'max lifetime') >= 1, 'max_lifetime: reaped with reason "max lifetime"');
cleanup_sessions($s);
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);

# --- 4. orphans and dead containers -----------------------------------------------------------
$s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "sessions: {max_per_ip: 10, per_ip_per_hour: 100}\n");
my $other = "other-$$-" . int(rand(1e6));
my $ms = int(time * 1000);
sub run_box {
    my ($host, $session, $created_ms) = @_;
    my ($rc, $out) = docker_cmd('run', '-d', '--runtime', 'runsc', '--network', 'none', '--label', "sandboxd.host=$host",
        '--label', "sandboxd.session=$session", '--label', 'sandboxd.kind=session', '--label', "sandboxd.created=$created_ms",
        'sandboxd/test:busybox', 'sleep', '600');
    diag("docker run: $out") if $rc;
    my ($id) = $out =~ /^([0-9a-f]{64})$/m;
    return $id;
}
my $old     = run_box($s->{host_id}, 'NOPE' . ('x' x 18), $ms - 60000);
my $young   = run_box($s->{host_id}, 'YOUNG' . ('x' x 17), int(time * 1000));
my $foreign = run_box($other, 'NOPE' . ('y' x 18), $ms - 60000);
ok($old && $young && $foreign, 'three hand-made containers started');
END { local $?; docker_cmd('rm', '-f', $foreign) if $foreign }

# Meanwhile, a live session whose container we kill.
($st, $j) = create_session($s);
is($st, 201, 'dead container: session created');
my $ksid = $j->{sessionId} // 'none';
my $kcid = session_container($s, $ksid);
my ($krc) = docker_cmd('kill', $kcid // 'none');
is($krc, 0, 'dead container: docker kill');

ok(wait_until(15, sub { !docker_exists($old) }), 'an orphan of this host (no such session, 60 s old) is removed within 15 s');
ok(docker_exists($young), '  ... one created seconds ago is left alone in that scan (a create may be in flight)');
ok(docker_exists($foreign), '  ... and another host\'s container is never touched');
ok(scalar $s->log_lines('removing orphaned container'), '  ... logged "removing orphaned container"');

my $ks;
ok(wait_until(15, sub { ($ks) = get_session($s, $ksid); $ks == 404 }), 'dead container: the session answers 404 within 15 s');
ok(wait_until(5, sub { !docker_exists($kcid) }), 'dead container: its container is removed');
ok(reaped($s, 'container stopped') >= 1, 'dead container: reaped with reason "container stopped"');
ok(wait_until(5, sub { health_containers($s) == 0 }), 'dead container: /health counts 0');

ok(wait_until(20, sub { !docker_exists($young) }), 'the young orphan is removed once past the grace period');
ok(docker_exists($foreign), 'the other host\'s container is still there');

finish_server($s);
done_testing;
