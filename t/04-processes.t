# Worker supervision and the stop signals.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use SbxTest;

my $s = SbxTest->new(workers => 2);
# The log goes to a file named in the config: rewrite it and restart to use it.
$s->stop;
my $logfile = "$s->{dir}/file.log";
$s->write_conf("log: {level: info, file: $logfile}\n");
$s->start;

my @w = $s->worker_pids;
is(scalar @w, 2, 'two workers');

# An idle master sleeps: it must not spin in its loop (it once polled stdin by mistake).
sub cpu_ticks { open my $f, '<', "/proc/$_[0]/stat" or return 0; my @f = split ' ', (<$f> =~ s/^.*\) //r); $f[11] + $f[12] }
my $t0 = cpu_ticks($s->{pid});
sleep 2;
cmp_ok(cpu_ticks($s->{pid}) - $t0, '<', 10, 'an idle master uses no CPU (under 0.1 s in 2 s)');

# kill -9 of a worker: the master respawns it and requests keep succeeding.
kill 'KILL', $w[0];
ok(wait_until(5, sub { my @n = $s->worker_pids; @n == 2 && !grep { $_ == $w[0] } @n }), 'a killed worker is replaced');
my $good = grep { http_get($s->url('/health'))->{status} == 200 } 1 .. 200;
is($good, 200, '200 requests succeed after the respawn');
my $log = do { local (@ARGV, $/) = $logfile; <> };
like($log, qr/"msg":"worker died; respawning","worker":$w[0],"status":-1,"signal":9/, 'the death is logged with its signal');

# SIGUSR1 reopens the log file after rotation.
rename $logfile, "$logfile.1" or die;
$s->signal('USR1');
ok(wait_until(5, sub { -s $logfile }), 'SIGUSR1: a new log file is opened');
like(do { local (@ARGV, $/) = $logfile; <> }, qr/"msg":"log reopened"/, 'and the master says so in it');

# Every log line is one JSON object with the common fields.
my @lines = split /\n/, do { local (@ARGV, $/) = "$logfile.1"; <> };
my @bad = grep { my $j = json_decode($_); !$j || !$j->{time} || !$j->{level} || !$j->{pid} || !$j->{role} || !defined $j->{msg} } @lines;
ok(@lines > 3 && !@bad, 'every log line is JSON with time, level, pid, role, msg') or diag $bad[0];
ok((grep { /"role":"worker"/ } @lines) && (grep { /"role":"master"/ } @lines), 'both roles log');

# SIGQUIT: exit 0, no worker left, pid file gone.
my @kids = $s->worker_pids;
$s->signal('QUIT');
is($s->wait_exit(15), 0, 'SIGQUIT: master exits 0');
ok(!grep({ kill 0, $_ } @kids), 'no worker is left');
ok(!-e "$s->{dir}/sandboxd.pid", 'the pid file is removed');

# SIGTERM: a fast stop, also clean.
$s->start;
@kids = $s->worker_pids;
$s->signal('TERM');
is($s->wait_exit(10), 0, 'SIGTERM: master exits 0');
ok(!grep({ kill 0, $_ } @kids), 'no worker is left after SIGTERM');

# A worker whose master is killed does not keep serving on its own.
$s->start;
@kids = $s->worker_pids;
kill 'KILL', $s->{pid};
$s->wait_exit(5);
ok(wait_until(10, sub { !grep { kill 0, $_ } @kids }), 'workers exit when the master is killed');
$s->check_log_clean;
done_testing;
