# What a sysadmin relies on: sd_notify (READY, RELOADING, STOPPING) on a
# NOTIFY_SOCKET of our own, /api/v1/status as the toolkata frontend reads
# it, /metrics through promtool while sessions run, the systemd unit
# through systemd-analyze verify, and the man page.
use strict;
use warnings;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Test::More;
use SbxTest;

my $dir = tempdir(CLEANUP => 1);
my $sockpath = "$dir/notify";
my $ns = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $sockpath) or die "notify socket: $!";
sub notes {
    my ($want, $secs) = @_;
    my $all = '';
    wait_until($secs // 10, sub {
        while (IO::Select->new($ns)->can_read(0.05)) { $ns->recv(my $m, 4096); $all .= "$m\n" }
        return $all =~ $want;
    });
    return $all;
}
use IO::Select;

my $s = SbxTest->new(workers => 2, env => { NOTIFY_SOCKET => $sockpath },
    yaml => "docker: {image: sandboxd/test:busybox}\nsessions: {capacity: 2, max_per_ip: 5}\n");
like(notes(qr/READY=1/), qr/READY=1/, 'sd_notify: READY=1 once the workers serve');
$s->signal('HUP');
my $n = notes(qr/RELOADING=1.*READY=1/s);
like($n, qr/RELOADING=1\nMONOTONIC_USEC=\d+/, 'SIGHUP: RELOADING=1 with MONOTONIC_USEC');
like($n, qr/RELOADING=1.*READY=1/s, 'then READY=1 when the new workers serve');

# /api/v1/status, as the frontend reads it before connecting.
my $st = json_decode(http_get($s->url('/api/v1/status'))->{content});
is($st->{isOpen}, JSON::PP::false, 'status: closed (ok to connect) when all is well');
ok(!defined $st->{reason}, 'reason is null');
ok(exists $st->{metrics}{activeSessions} && exists $st->{metrics}{memoryPercent}, 'with metrics');

my @ids;
for (1 .. 2) {
    my $r = http_req('POST', $s->url('/api/v1/sessions'), content => '{"toolPair":"t"}');
    is($r->{status}, 201, "session $_ created");
    push @ids, json_decode($r->{content})->{sessionId};
}
$st = json_decode(http_get($s->url('/api/v1/status'))->{content});
is($st->{isOpen}, JSON::PP::true, 'status: open at capacity');
like($st->{reason}, qr/capacity/i, 'and says why');

# /metrics: Prometheus text, aggregated over the workers, valid for promtool.
my $m = http_get($s->url('/metrics'));
is($m->{status}, 200, '/metrics is 200');
like($m->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'in the Prometheus text format');
like($m->{content}, qr/^sandboxd_sessions_live 2$/m, 'live sessions: 2');
like($m->{content}, qr/^sandboxd_sessions_created_total 2$/m, 'created: 2 (counted across both workers)');
like($m->{content}, qr/^sandboxd_container_start_seconds_count 2$/m, 'container start latency histogram');
like($m->{content}, qr/^sandboxd_docker_request_seconds_bucket\{le="\+Inf"\} \d+$/m, 'Docker call latency histogram');
like($m->{content}, qr/^sandboxd_sessions_rejected_total\{reason="capacity"\} 0$/m, 'rejections by reason');
like($m->{content}, qr/^sandboxd_build_info\{version="[^"]+"\} 1$/m, 'build info');
open my $fh, '|-', "promtool check metrics > $dir/promtool.out 2>&1" or die;
print $fh $m->{content};
close $fh;
is($?, 0, 'promtool check metrics passes') or diag do { local (@ARGV, $/) = "$dir/promtool.out"; <> };
my $r = http_req('POST', $s->url('/api/v1/sessions'), content => '{"toolPair":"t"}');
like(http_get($s->url('/metrics'))->{content}, qr/^sandboxd_sessions_rejected_total\{reason="capacity"\} 1$/m,
    'a refusal at capacity is counted');

http_req('DELETE', $s->url("/api/v1/sessions/$_")) for @ids;
$s->signal('QUIT');
like(notes(qr/STOPPING=1/), qr/STOPPING=1/, 'SIGQUIT: STOPPING=1');
is($s->wait_exit(20), 0, 'and a clean exit');
$s->check_log_clean;

# The unit and the man page.
my $src = $ENV{SBX_SRCDIR};
mkdir "$dir/man8";
system("cp $src/conf/sandboxd.8 $dir/man8/");
open my $in, '<', "$src/systemd/sandboxd.service" or die;
open my $outu, '>', "$dir/sandboxd.service" or die;
print $outu s{/usr/local/sbin/sandboxd}{$ENV{SBX_BIN}}gr while <$in>;
close $outu;
my $v = `MANPATH=$dir: systemd-analyze verify $dir/sandboxd.service 2>&1`;
is($? >> 8, 0, 'systemd-analyze verify passes on the unit') or diag $v;
is($v, '', 'with nothing to say');
my $lint = `LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l $src/conf/sandboxd.8 2>&1 >/dev/null`;
is($lint, '', 'the man page renders without warnings');
done_testing;
