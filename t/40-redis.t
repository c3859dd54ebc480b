# Redis as the source of truth across workers and hosts: two sandboxd
# instances (two "hosts") share one Redis; quotas are exact across both,
# the registry reads with redis-cli, DEL of a key ends its session, a
# kill -9 of everything is survived by live shells, and a Redis outage
# refuses new sessions without touching live terminals.
use strict;
use warnings;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use SbxTest;
use SbxWS;

my $redis = SbxRedis->new;
my $yaml = "docker: {image: sandboxd/test:busybox}\nsessions: {max_per_ip: 3, per_ip_per_hour: 100}\n";
my $a = SbxTest->new(redis => $redis, yaml => $yaml, host_id => "ta$$");
my $b = SbxTest->new(redis => $redis, yaml => $yaml, host_id => "tb$$");

sub create {
    my ($s, %h) = @_;
    my $r = http_req('POST', $s->url('/api/v1/sessions'), content => '{"toolPair":"t"}', headers => \%h);
    return ($r->{status}, json_decode($r->{content}) // {});
}
sub delete_all {
    for my $s (@_) { http_req('DELETE', $s->url("/api/v1/sessions/$_")) for @{ $s->{made} // [] }; $s->{made} = [] }
}

# 1. 40 concurrent creates from one IP over both instances: exactly max_per_ip admitted.
my $results = "$a->{dir}/race";
my @kids;
for my $i (1 .. 40) {
    my $pid = fork // die;
    if ($pid == 0) {
        my ($st, $j) = create($i % 2 ? $a : $b);
        open my $fh, '>>', $results; print $fh "$st " . ($j->{sessionId} // '-') . " " . ($i % 2) . "\n"; close $fh;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
my @lines = do { open my $fh, '<', $results or die; <$fh> };
my @won = grep { /^201 / } @lines;
is(scalar @lines, 40, '40 creates answered');
is(scalar @won, 3, 'exactly max_per_ip (3) admitted across both instances');
is(scalar(grep { /^429 / } @lines), 37, 'the other 37 got 429');
for (@won) { my (undef, $id, $odd) = split; push @{ ($odd ? $a : $b)->{made} }, $id }

# 2. The registry, read with plain redis-cli.
my $id = $won[0] =~ /^201 (\S+)/ && $1;
my @kv = split /\n/, $redis->cli('HGETALL', "sandboxd:session:$id"), -1;
pop @kv if @kv % 2; # the output's final newline
my %h = @kv;
is($h{state}, 'running', 'HGETALL shows the session running');
is($h{ip}, '127.0.0.1', 'with its client IP');
like($h{container}, qr/^[0-9a-f]{64}$/, 'its container id');
my $pid = $$;
like($h{host}, qr/^t[ab]$pid$/, 'and its host');
ok($h{created} && $h{expires} && $h{last_active} && $h{toolPair} eq 't' && $h{environment} eq 'bash', 'and the other fields');
my $ttl = $redis->cli('PTTL', "sandboxd:session:$id");
cmp_ok($ttl, '>', 0, 'the hash has a TTL');
cmp_ok($ttl, '<=', 300000, 'of at most the idle timeout');
my @scan = split /\n/, $redis->cli('--scan', '--pattern', 'sandboxd:session:*');
is(scalar @scan, 3, 'redis-cli --scan lists the three live sessions');
like($redis->cli('SMEMBERS', 'sandboxd:ip:127.0.0.1:active'), qr/\Q$id\E/, 'the per-IP set holds it');
like($redis->cli('SMEMBERS', "sandboxd:host:$h{host}:sessions"), qr/\Q$id\E/, 'the host set holds it');

# 3. DEL of the key ends the session: its container is removed within a reap interval.
my $owner = $h{host} eq "ta$$" ? $a : $b;
my ($cid) = $owner->containers;
$redis->cli('DEL', "sandboxd:session:$id");
ok(wait_until(15, sub { !grep { $_ eq substr($h{container}, 0, 12) } $owner->containers }), 'DEL with redis-cli ends the session: container removed');
is(http_get($owner->url("/api/v1/sessions/$id"))->{status}, 404, 'and the id answers 404');
@{ $owner->{made} } = grep { $_ ne $id } @{ $owner->{made} };
delete_all($a, $b);
ok(wait_until(10, sub { !$a->containers && !$b->containers }), 'all deleted');

# 4. The hourly window is shared by both instances.
my $hy = "docker: {image: sandboxd/test:busybox}\nsessions: {max_per_ip: 10, per_ip_per_hour: 3}\n";
my $r2 = SbxRedis->new;
my $c = SbxTest->new(redis => $r2, yaml => $hy, host_id => "tc$$");
my $d = SbxTest->new(redis => $r2, yaml => $hy, host_id => "td$$");
my @st;
for my $s ($c, $d, $c, $d) {
    my ($st, $j) = create($s);
    push @st, $st;
    http_req('DELETE', $s->url("/api/v1/sessions/$j->{sessionId}")) if $j->{sessionId};
}
is_deeply(\@st, [201, 201, 201, 429], 'per_ip_per_hour 3 holds across two instances');
$c->stop; $d->stop;

# 5. kill -9 of the whole process tree; a restart adopts the live session and removes orphans.
my ($st, $j) = create($a);
is($st, 201, 'a session to survive a crash');
my $live = $j->{sessionId};
my $ws = SbxWS->connect($a->{port}, "/api/v1/sessions/$live/ws");
$ws->wait_msg('initComplete', 20);
$ws->send_text("cd /tmp && echo before-crash > state && echo saved\r");
ok($ws->read_until(qr/\r\nsaved/), 'state written in the shell');
my $orphan = `docker run -d --runtime runsc --network none --label sandboxd.host=ta$$ --label sandboxd.session=NoSuchSession00000000 --label sandboxd.kind=session --label sandboxd.created=0 sandboxd/test:busybox sleep 600`;
chomp $orphan;
ok($orphan, 'an orphan container labelled for this host');
my @procs = ($a->{pid}, $a->worker_pids);
kill 'KILL', @procs;
$a->wait_exit(5);
ok(wait_until(5, sub { !grep { kill 0, $_ } @procs }), 'kill -9 of the master and every worker');
$a->start;
ok(wait_until(20, sub { http_get($a->url("/api/v1/sessions/$live"))->{status} == 200 }), 'after restart the session is adopted');
my $ws2 = SbxWS->connect($a->{port}, "/api/v1/sessions/$live/ws");
ok($ws2 && $ws2->wait_msg('connected'), 'its terminal reconnects');
$ws2->send_text("cat /tmp/state\r");
ok($ws2->read_until(qr/\r\nbefore-crash/), 'and the shell kept its state');
ok(wait_until(20, sub { `docker ps -aq --no-trunc --filter id=$orphan` eq '' }), 'the orphan is removed');

# 6. Redis stops: 503 with a reason, the live terminal still works; Redis back: creates work again.
$redis->stop;
($st, $j) = create($a);
is($st, 503, 'Redis down: a new session is 503');
like($j->{message}, qr/Redis is unavailable/, 'with the reason');
$ws2->send_text("echo still-\$((40+2))\r");
ok($ws2->read_until(qr/still-42/), 'a live terminal keeps working without Redis');
$redis->start; # an empty Redis: it lost the registry
ok(wait_until(15, sub { (create($a))[0] == 201 }), 'Redis back: creates succeed again');
ok(wait_until(20, sub { $redis->cli('EXISTS', "sandboxd:session:$live") =~ /^1/ }),
    'the live session is written to the registry again (Redis lost it), not ended');
sleep 6; # another reap interval must not end it either
$ws2->send_text("echo after-outage\r");
ok($ws2->read_until(qr/\r\nafter-outage/), 'the live session survives Redis losing its data');

$ws2->close;
$_->stop for $a, $b;
$_->remove_containers for $a, $b;
ok(!$a->containers && !$b->containers, 'no container left behind');
$a->check_log_clean;
$b->check_log_clean;
done_testing;
