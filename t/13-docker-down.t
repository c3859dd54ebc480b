# Docker unreachable or misbehaving: POST /sessions is a 503 with the reason,
# never a crash; when Docker is back, sessions work again without a restart,
# and a DELETE made while Docker was away is finished by housekeeping.
use strict;
use warnings;
use IO::Socket::UNIX;
use POSIX qw(_exit);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(time);
use SbxTest;
use SbxSession;

my $REAL = '/var/run/docker.sock';
my $s = SbxTest->new(workers => 2, no_start => 1);
my $sock = "$s->{dir}/docker.sock";
$s->write_conf("docker: {socket: $sock, image: sandboxd/test:busybox}\nsessions: {max_per_ip: 10, per_ip_per_hour: 100}\n");
$s->start;

# --- 1. No socket at all ------------------------------------------------------------
my ($st, $j, $r) = create_session($s);
is($st, 503, 'docker socket missing: POST /sessions is 503');
is($j->{error}, 'ServiceUnavailable', '  ... ServiceUnavailable');
like($j->{message} // '', qr/\Q$sock\E/, '  ... the message names the socket') or diag $r->{content};
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, '  ... with a Retry-After');
is(http_get($s->url('/health'))->{status}, 200, '/health still answers');
ok(wait_until(8, sub { grep { ($_->{error} // '') =~ /\Q$sock\E/ } $s->log_lines('docker is failing') }),
    'housekeeping logs "docker is failing" with the reason');

# --- 2. A Docker that misbehaves ---------------------------------------------------------
# mode close: accept and hang up; mode 500: answer every request with an error.
sub fake_docker {
    my ($mode) = @_;
    unlink $sock;
    my $l = IO::Socket::UNIX->new(Type => SOCK_STREAM, Local => $sock, Listen => 16) or die "listen $sock: $!";
    my $pid = fork // die;
    if ($pid == 0) {
        local $SIG{ALRM} = sub { _exit(0) };
        alarm 60;
        while (my $c = $l->accept) {
            if ($mode eq '500') {
                my $req = '';
                while ($req !~ /\r\n\r\n/) { my $n = sysread($c, $req, 4096, length $req); last unless $n }
                my $b = '{"message":"fake engine failure"}';
                print $c "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: "
                  . length($b) . "\r\nConnection: close\r\n\r\n$b";
            }
            close $c;
        }
        _exit(0);
    }
    close $l;
    return $pid;
}
sub stop_fake { my ($pid) = @_; kill 'KILL', $pid; waitpid $pid, 0; unlink $sock }

my $fake = fake_docker('close');
($st, $j) = create_session($s);
is($st, 503, 'docker hangs up at once: 503');
ok(length($j->{message} // ''), '  ... with a message') and note $j->{message};
stop_fake($fake);

$fake = fake_docker('500');
($st, $j) = create_session($s);
is($st, 503, 'docker answers 500: 503');
like($j->{message} // '', qr/fake engine failure/, '  ... the message carries Docker\'s reason');
stop_fake($fake);
is(http_get($s->url('/health'))->{status}, 200, '/health still answers');
is(scalar(my @w = $s->worker_pids), 2, 'both workers still alive');

# --- 3. Docker back: recovery without a restart --------------------------------------------
ok(symlink($REAL, $sock), 'the docker socket appears');
($st, $j) = create_session($s);
is($st, 201, 'POST /sessions is 201 again, no restart') or diag json_encode($j);
my $sid = $j->{sessionId} // 'none';
my $cid = session_container($s, $sid);
ok($cid && docker_exists($cid), '  ... and its container runs');
ok(wait_until(10, sub { scalar $s->log_lines('docker is reachable') }), 'housekeeping logs "docker is reachable"');

# --- 4. A DELETE while Docker is away is finished when it is back ---------------------------
unlink $sock;
my ($dst, $d) = delete_session($s, $sid);
is($dst, 200, 'DELETE while docker is away: 200');
ok($d && $d->{success}, '  ... success true');
my ($gst, $g, $gr) = get_session($s, $sid);
is($gst, 404, '  ... and the session answers 404 (it is gone to the client)') or diag $gr->{content};
ok(docker_exists($cid), '  ... the container could not be removed yet');
($st) = create_session($s);
is($st, 503, 'a create meanwhile is 503');
ok(symlink($REAL, $sock), 'the docker socket is back');
ok(wait_until(30, sub { !docker_exists($cid) }), 'housekeeping removes the deleted session\'s container within 30 s');
ok(wait_until(5, sub { health_containers($s) == 0 }), '/health counts 0');

cleanup_sessions($s);
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);

# --- 5. An outage does not use up the clients' hourly quota -----------------------------------
# per_ip_per_hour counts sessions created (conf/sandboxd.yaml); a 503 created none.
$s = SbxTest->new(workers => 2, no_start => 1);
$sock = "$s->{dir}/docker.sock";
$s->write_conf("docker: {socket: $sock, image: sandboxd/test:busybox}\nsessions: {max_per_ip: 10, per_ip_per_hour: 2}\n");
$s->start;
my @codes = map { (create_session($s))[0] } 1 .. 2;
is("@codes", '503 503', 'per_ip_per_hour 2, docker away: two creates are 503');
symlink($REAL, $sock);
($st, $j) = create_session($s);
is($st, 201, 'docker back: the next create is 201, not 429 (failed creates are not counted)') or diag json_encode($j);
finish_server($s);
done_testing;
