# SIGHUP: a bad config keeps the old one serving; a good one takes effect
# (a new listen port) while a client loop running through it sees no failure.
use strict;
use warnings;
use Test::More;
use POSIX qw(_exit);
use Time::HiRes qw(sleep);
use SbxTest;

my $s = SbxTest->new(workers => 2);
my $port1 = $s->{port};
my @gen0 = $s->worker_pids;
is(scalar @gen0, 2, 'two workers at start');

# 1. A bad config: logged with its position, the old one keeps serving.
$s->write_conf("sessions:\n  max_per_ip: lots\n");
$s->signal('HUP');
ok(wait_until(5, sub { grep { ($_->{error} // '') =~ /:\d+:\d+: sessions\.max_per_ip/ } $s->log_lines('reload failed; the old configuration keeps serving') }),
    'bad reload is logged with file:line:column');
is(http_get($s->url('/health'))->{status}, 200, 'still serving after a bad reload');
is_deeply([$s->worker_pids], \@gen0, 'the workers were not replaced');

# 2. Good reloads under load: a child makes fresh-connection requests throughout.
my $port2 = free_port();
my $result = "$s->{dir}/loop.txt";
my $started = "$s->{dir}/loop.started";
my $kid = fork // die;
if ($kid == 0) {
    my ($ok, $bad, $n) = (0, 0, 0);
    my $ua = HTTP::Tiny->new(keep_alive => 0, timeout => 10);
    open my $fh, '>', $started; close $fh;
    for (1 .. 2500) {
        my $r = $ua->get("http://127.0.0.1:$port1/health");
        $r->{status} == 200 ? $ok++ : $bad++;
        print STDERR "# failure: $r->{status} $r->{content}\n" if $r->{status} != 200 && $bad <= 3;
    }
    open $fh, '>', $result; print $fh "$ok $bad\n"; close $fh;
    _exit(0);
}
wait_until(5, sub { -e $started });
$s->write_conf("", ["127.0.0.1:$port1", "127.0.0.1:$port2"]);
for my $i (1 .. 3) {
    sleep 0.3;
    $s->signal('HUP');
}
ok(wait_until(10, sub { http_get("http://127.0.0.1:$port2/health")->{status} == 200 }), 'the new listen port serves after reload');
ok(kill(0, $kid), 'the client loop was still running through the reloads');
waitpid($kid, 0);
open my $fh, '<', $result or die "no result from the client loop";
my ($ok, $bad) = split ' ', scalar <$fh>;
is($bad, 0, 'no request failed through three reloads');
cmp_ok($ok, '>=', 2000, "at least 2000 requests ran ($ok)");
is(scalar $s->log_lines('reloaded'), 3, 'three reloads logged');
ok(wait_until(10, sub { grep { $_->{generation} == 3 } $s->log_lines('all workers serving') }),
    'the master hears the newest generation say it serves');

ok(wait_until(10, sub { my @w = $s->worker_pids; @w == 2 && !grep { my $p = $_; grep { $_ == $p } @gen0 } @w }),
    'old workers drained and exited; two new ones serve');

# 3. A port removed from the config stops listening.
$s->write_conf("", ["127.0.0.1:$port2"]);
$s->signal('HUP');
ok(wait_until(10, sub { !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port1", Timeout => 1) }), 'a removed port is closed');
is(http_get("http://127.0.0.1:$port2/health")->{status}, 200, 'the kept port still serves');

# 4. -s reload goes through the pid file.
my $bin = sandboxd_bin();
system("$bin -c $s->{conf} -s reload");
is($? >> 8, 0, 'sandboxd -s reload exits 0');
ok(wait_until(5, sub { $s->log_lines('reloaded') == 5 }), 'and the master reloads');

system("$bin -c $s->{conf} -s quit");
is($s->wait_exit(15), 0, 'sandboxd -s quit stops the master with status 0');
$s->check_log_clean;
done_testing;
