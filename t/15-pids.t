# container.pids under gVisor: the sandbox can run pids - 5 processes and
# stay usable (the host PidsLimit leaves room for runsc's own threads, so
# the host pids controller never refuses gVisor a thread: that would kill
# the whole sandbox), and a fork bomb is stopped by the inner nproc limit:
# the bombed sandbox, other sessions, the server and the host are unharmed.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use SbxTest;
use SbxSession;

# The host pids cgroup of a container (cgroup v1 cgroupfs, or v2 systemd), or undef.
sub pids_cgroup {
    my ($cid) = @_;
    for my $d ("/sys/fs/cgroup/pids/docker/$cid", glob("/sys/fs/cgroup/pids/*/$cid"),
        "/sys/fs/cgroup/system.slice/docker-$cid.scope", "/sys/fs/cgroup/docker/$cid") {
        return $d if -e "$d/pids.max";
    }
    return undef;
}
sub slurp { my ($f) = @_; open my $fh, '<', $f or return ''; my $v = do { local $/; <$fh> } // ''; $v =~ s/\s+$//; $v }
# Forks the host pids controller refused this container (pids.events "max N").
sub refused {
    my ($cg) = @_;
    return -1 unless $cg;
    my ($n) = slurp("$cg/pids.events") =~ /^max (\d+)/m;
    return $n // -1;
}
sub usage {
    my ($cg) = @_;
    return 'no cgroup' unless $cg;
    return sprintf 'host pids current %s peak %s max %s, refused %s', slurp("$cg/pids.current"), slurp("$cg/pids.peak") || '?',
      slurp("$cg/pids.max"), refused($cg);
}
sub running { my ($cid) = @_; my $i = docker_inspect($cid); $i && $i->{State}{Running} ? 1 : 0 }

my $s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "container: {pids: 50}\nsessions: {max_per_ip: 10, per_ip_per_hour: 100}\n");

# --- Session A: pids - 5 = 45 background processes ------------------------------------
my ($st, $j) = create_session($s);
is($st, 201, 'session A created');
my $a = session_container($s, $j->{sessionId} // 'none') // 'none';
my $hc = (docker_inspect($a) // {})->{HostConfig} // {};
is($hc->{Runtime}, 'runsc', 'A runs under runsc');
my %ul = map { $_->{Name} => $_->{Soft} } @{ $hc->{Ulimits} // [] };
is($ul{nproc}, 50, 'Ulimit nproc 50 (container.pids) inside');
my $acg = pids_cgroup($a);
ok($acg, 'A\'s host pids cgroup found') or diag "no pids cgroup for $a";

my $t0 = time;
# "ps -o args" shows each sleep as exactly "sleep 300" (a forked child not yet exec'd shows its parent's line).
my ($rc, $out) = docker_timeout(60, 'exec', '-u', '1000', $a, 'sh', '-c',
    'for i in $(seq 45); do sleep 300 & done; sleep 2; ps -o args | grep -c "^sleep 300$"');
is($rc, 0, 'A: docker exec starting 45 background sleeps exits 0') or diag $out;
like($out, qr/^45$/m, 'A: all 45 background processes are alive at once') or diag $out;
unlike($out, qr/can't fork|Resource temporarily unavailable/i, 'A: no fork failed') or diag $out;
diag(sprintf 'A with 45 processes (%.1f s): %s', time - $t0, usage($acg));

# With them running, the sandbox stays usable.
my $good = 0;
for (1 .. 5) {
    ($rc, $out) = docker_timeout(30, 'exec', '-u', '1000', $a, 'sh', '-c', 'ps -o args | grep -c "^sleep 300$"');
    $good++ if $rc == 0 && $out =~ /^45$/m;
}
is($good, 5, 'A: five more commands run beside the 45 processes') or diag "last: rc=$rc $out";
ok(running($a), 'A: the sandbox is still running');
is(refused($acg), 0, 'A: the host pids controller never refused gVisor a thread') or diag usage($acg);

# --- Session B: a fork bomb as the sandbox user -------------------------------------------
($st, $j) = create_session($s);
is($st, 201, 'session B created');
my $b = session_container($s, $j->{sessionId} // 'none') // 'none';
my $bcg = pids_cgroup($b);
$t0 = time;
($rc, $out) = docker_timeout(30, 'exec', '-u', '1000', $b, 'sh', '-c', 'b(){ b|b& }; b; sleep 3; echo survived');
isnt($rc, 124, sprintf('B: the fork bomb\'s exec ends on its own within 30 s (%.1f s)', time - $t0));
like($out, qr/survived/, 'B: the shell that started it survives') or diag substr($out, 0, 1000);
like($out, qr/can't fork|Resource temporarily unavailable/, 'B: forks failed inside (nproc)');
diag('B after the fork bomb: ' . usage($bcg));
my $back = wait_until(30, sub { my ($r, $o) = docker_timeout(10, 'exec', $b, 'echo', 'ok'); $o =~ /^ok$/m });
ok($back, 'B: the bombed sandbox recovers (echo ok within 30 s)');
ok(running($b), 'B: the bombed sandbox is still running (contained inside, not killed)');
is(refused($bcg), 0, 'B: the bomb was stopped by nproc inside, never by the host pids controller') or diag usage($bcg);

# --- Everyone else is unharmed --------------------------------------------------------------
is(http_get($s->url('/health'))->{status}, 200, 'after the bomb: /health answers');
ok(running($a), 'after the bomb: session A still runs');
($rc, $out) = docker_timeout(30, 'exec', '-u', '1000', $a, 'sh', '-c', 'ps -o args | grep -c "^sleep 300$"');
like($out, qr/^45$/m, 'after the bomb: A still has its 45 processes') or diag $out;
($st, $j) = create_session($s);
is($st, 201, 'after the bomb: a new session C can be created');
my $c = session_container($s, $j->{sessionId} // 'none') // 'none';
($rc, $out) = docker_timeout(30, 'exec', $c, 'echo', 'ok');
like($out, qr/^ok$/m, 'after the bomb: docker exec echo ok in C works');
is(system('true'), 0, 'after the bomb: the host can fork');

# A user ends all 45 jobs at once (every task wakes up in the same instant).
($rc, $out) = docker_timeout(30, 'exec', '-u', '1000', $a, 'sh', '-c', 'killall sleep; echo killed');
like($out, qr/^killed$/m, 'A: killall of the 45 processes runs') or diag $out;
ok(wait_until(10, sub { my ($r, $o) = docker_timeout(10, 'exec', '-u', '1000', $a, 'sh', '-c', 'ps -o args | grep -c "^sleep 300$"'); $o =~ /^0$/m }),
    'A: they are gone');
ok(running($a), 'A: the sandbox is still running after the mass kill');
is(refused($acg), 0, 'A: still no thread refused by the host pids controller') or diag usage($acg);
my ($bst) = get_session($s, (split '/', ($j->{wsUrl} // ''))[-2] // 'none');
is($bst, 200, 'after the bomb: the server answers GET for C');

# Removing a gVisor sandbox that grew hundreds of host threads can take Docker
# longer than the client's 10 s timeout under load: wait on Docker itself.
my $t1 = time;
cleanup_sessions($s);
ok(wait_until(60, sub { !docker_exists($a) && !docker_exists($b) && !docker_exists($c) }), 'all three sessions removed by DELETE');
diag(sprintf 'removal of the three sessions took %.1f s', time - $t1);
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);
done_testing;
