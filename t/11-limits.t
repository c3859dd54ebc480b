# Per-IP admission: exact under a 20-request race across two workers; the
# hourly window with Retry-After; X-Forwarded-For ignored from an untrusted
# peer and honoured (right-most untrusted hop) from a trusted proxy;
# sessions.capacity full -> 503.
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time sleep);
use SbxTest;
use SbxSession;

# The worker pid that accepted the server side of our client socket $c, or
# undef if none has yet: the kernel's TCP table gives the server-side inode,
# the workers' fd tables tell who holds it.
sub accepted_by {
    my ($s, $c, @workers) = @_;
    my ($sp, $cp) = (sprintf('%04X', $s->{port}), sprintf('%04X', $c->sockport));
    open my $fh, '<', '/proc/net/tcp' or return undef;
    my $inode;
    while (<$fh>) {
        my @f = split ' ';
        $inode = $f[9], last if ($f[1] // '') =~ /:$sp$/ && ($f[2] // '') =~ /:$cp$/;
    }
    return undef unless $inode;
    for my $w (@workers) {
        for my $fd (glob "/proc/$w/fd/*") {
            my $l = readlink($fd) // next;
            return $w if $l eq "socket:[$inode]";
        }
    }
    return undef;
}

# Connects until each worker has accepted $per connections of ours (at most
# 200 tries), then writes a POST /sessions on all 2*$per at once and reads every
# answer. Returns ([status, {headers}, body] ...) in request order, or () if the
# kernel never gave one of the workers enough connections.
sub race {
    my ($s, $per) = @_;
    my @workers = $s->worker_pids;
    my %on = map { ($_ => []) } @workers;
    for (1 .. 200) {
        last unless grep { @{ $on{$_} } < $per } @workers;
        my $c = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$s->{port}", Timeout => 5) or die "connect: $!";
        my $w = wait_until(2, sub { accepted_by($s, $c, @workers) });
        push @{ $on{$w} }, $c if $w && @{ $on{$w} } < $per;    # extra ones close when they go out of scope
        sleep 0.002;    # give the other worker a chance to be the one that wakes
    }
    return () if grep { @{ $on{$_} } < $per } @workers;
    my @socks = map { @{ $on{$_} } } @workers;
    my $body = '{"toolPair":"git-jj"}';
    my $req = "POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:$s->{port}\r\nContent-Type: application/json\r\n"
      . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    syswrite($_, $req) == length($req) or die "write: $!" for @socks;
    my %buf = map { ($_ => '') } @socks;
    my $sel = IO::Select->new(@socks);
    my $deadline = time + 30;
    while ($sel->count && time < $deadline) {
        for my $fh ($sel->can_read(1)) {
            my $r = sysread($fh, $buf{$fh}, 65536, length $buf{$fh});
            next if $r;
            $sel->remove($fh);
            close $fh;
        }
    }
    my @res;
    for my $fh (@socks) {
        my ($head, $b) = split /\r\n\r\n/, $buf{$fh}, 2;
        my ($st) = ($head // '') =~ m{^HTTP/1\.\d (\d{3})};
        my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head // '';
        push @res, [$st // 0, \%h, $b // ''];
    }
    return @res;
}

sub ids_of { map { my $j = json_decode($_->[2]); $j && $j->{sessionId} ? ($j->{sessionId}) : () } @_ }

# --- 1. Exact across workers: 20 racing creates, max_per_ip 2 ----------------------
my $s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "sessions: {max_per_ip: 2, per_ip_per_hour: 100}\n");
is(scalar(my @w = $s->worker_pids), 2, 'two workers');
# 10 requests on connections held by each worker, all written at once.
my $t0 = time;
my @res = race($s, 10);
is(scalar @res, 20, '20 connections: 10 accepted by each worker');
my @ok = grep { $_->[0] == 201 } @res;
my @tm = grep { $_->[0] == 429 } @res;
diag(sprintf 'race: %d x 201, %d x 429 in %.2f s', scalar @ok, scalar @tm, time - $t0);
is(scalar @ok, 2, '20 racing creates from one IP across 2 workers: exactly max_per_ip (2) get 201')
  or diag join ' ', map { $_->[0] } @res;
is(scalar @tm, 18, '  ... and the other 18 get 429');
ok(!(grep { my $j = json_decode($_->[2]); !$j || ($j->{error} // '') ne 'TooManySessions' } @tm), '  ... every 429 is TooManySessions');
ok(!(grep { ($_->[1]{'retry-after'} // '') !~ /^\d+$/ || $_->[1]{'retry-after'} < 1 } @tm), '  ... every 429 has a Retry-After');
ok(!(grep { my $j = json_decode($_->[2]); !$j || ($j->{retryAfter} // -1) != ($_->[1]{'retry-after'} // -2) } @tm),
    '  ... and retryAfter in the body equal to it');
my %pids = map { ($_->{pid} => 1) } grep { ($_->{msg} // '') =~ /^session (created|refused: rate limit)$/ } $s->log_lines;
is(scalar keys %pids, 2, '  ... both workers answered (log lines from two pids)');
my @race_ids = ids_of(@ok);
is(scalar(() = $s->containers), 2, 'exactly two containers exist');
delete_session($s, $_) for @race_ids;
is(scalar(() = $s->containers), 0, 'both removed by DELETE');
my ($st, $j) = create_session($s);
is($st, 201, 'after the DELETEs the IP may create again (active count released)');
delete_session($s, $j->{sessionId}) if $j->{sessionId};

# --- 2. A spoofed X-Forwarded-For from an untrusted peer changes nothing -----------
my @spoof = map { [create_session($s, headers => { 'X-Forwarded-For' => "10.9.0.$_" })] } 1 .. 3;
is($spoof[0][0], 201, 'untrusted peer, XFF 10.9.0.1: 201');
is($spoof[1][0], 201, 'untrusted peer, XFF 10.9.0.2: 201');
is($spoof[2][0], 429, 'untrusted peer, XFF 10.9.0.3: 429 (still counted as 127.0.0.1)');
is($spoof[2][1]{error}, 'TooManySessions', '  ... TooManySessions');
my @ips = map { $_->{ip} } $s->log_lines('session created');
ok(@ips && !(grep { $_ ne '127.0.0.1' } @ips), 'every "session created" logs ip 127.0.0.1') or diag "@ips";
cleanup_sessions($s);
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);

# --- 3. The hourly window ------------------------------------------------------------
$s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "sessions: {max_per_ip: 10, per_ip_per_hour: 3}\n");
for my $n (1 .. 3) {
    ($st, $j) = create_session($s);
    is($st, 201, "hourly: create $n of 3 is 201");
    delete_session($s, $j->{sessionId}) if $j->{sessionId};
}
my $r;
($st, $j, $r) = create_session($s);
is($st, 429, 'hourly: the 4th create in the hour is 429 although none is live');
is($j->{error}, 'TooManySessions', '  ... TooManySessions');
my $ra = $r->{headers}{'retry-after'} // '';
ok($ra =~ /^\d+$/ && $ra >= 1 && $ra <= 3600, "  ... Retry-After between 1 and 3600 ($ra)");
cmp_ok($ra, '>=', 3500, '  ... about an hour, as the oldest creation was seconds ago');
is($j->{retryAfter}, $ra, '  ... retryAfter in the body equals Retry-After');
is(scalar(() = $s->containers), 0, 'hourly: no container was created for the refused request');
cleanup_sessions($s);
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);

# --- 4. A trusted proxy: X-Forwarded-For names the client -------------------------------
$s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "trusted_proxies: [127.0.0.1]\nsessions: {max_per_ip: 2, per_ip_per_hour: 100}\n");
sub created_ips { my ($s) = @_; [map { $_->{ip} } $s->log_lines('session created')] }
my @cases = (
    ['10.1.0.1',             '10.1.0.1', 201, 'XFF 10.1.0.1'],
    ['10.1.0.2',             '10.1.0.2', 201, 'XFF 10.1.0.2'],
    ['10.1.0.3',             '10.1.0.3', 201, 'XFF 10.1.0.3 (a third IP: not limited by the others)'],
    ['10.1.0.1',             '10.1.0.1', 201, 'XFF 10.1.0.1 again: its 2nd session'],
    ['6.6.6.6, 10.1.0.4',    '10.1.0.4', 201, 'XFF "6.6.6.6, 10.1.0.4": the right-most hop counts'],
    ['10.1.0.5, 127.0.0.1',  '10.1.0.5', 201, 'XFF "10.1.0.5, 127.0.0.1": trusted hops are skipped'],
    ['2001:db8::7',          '2001:db8::7', 201, 'XFF with an IPv6 address'],
);
for my $c (@cases) {
    my ($xff, $ip, $code, $name) = @$c;
    my $before = @{ created_ips($s) };
    ($st, $j) = create_session($s, headers => { 'X-Forwarded-For' => $xff });
    is($st, $code, "trusted proxy, $name: $code");
    my $after = created_ips($s);
    is($after->[$before], $ip, "  ... logged as ip $ip") if $code == 201;
}
($st, $j) = create_session($s, headers => { 'X-Forwarded-For' => '10.1.0.1' });
is($st, 429, 'trusted proxy, XFF 10.1.0.1 a third time: 429 (max_per_ip per forwarded IP)');
($st, $j) = create_session($s, headers => { 'X-Forwarded-For' => '6.6.6.6, 10.1.0.1' });
is($st, 429, 'trusted proxy, "6.6.6.6, 10.1.0.1": 429 (a forged left-most hop does not help)');
cleanup_sessions($s);
is(scalar(() = $s->containers), 0, 'all removed by DELETE');
is($s->stop, 0, 'server stops with status 0');
$s->check_log_clean;
is(scalar(() = $s->containers), 0, 'no container left behind');
diag_log($s);

# --- 5. sessions.capacity ---------------------------------------------------------------
$s = SbxTest->new(workers => 2, yaml => busybox_yaml() . "trusted_proxies: [127.0.0.1]\nsessions: {capacity: 1}\n");
($st, $j) = create_session($s, headers => { 'X-Forwarded-For' => '10.2.0.1' });
is($st, 201, 'capacity 1: the first session is 201');
my $first = $j->{sessionId};
($st, $j, $r) = create_session($s, headers => { 'X-Forwarded-For' => '10.2.0.2' });
is($st, 503, 'capacity 1: a second session from another IP is 503');
is($j->{error}, 'ServiceUnavailable', '  ... ServiceUnavailable');
like($j->{message} // '', qr/capacity/i, '  ... the message says capacity');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, '  ... with a Retry-After');
is(scalar(() = $s->containers), 1, 'capacity 1: only one container exists');
delete_session($s, $first);
($st, $j) = create_session($s, headers => { 'X-Forwarded-For' => '10.2.0.2' });
is($st, 201, 'capacity 1: after a DELETE the slot is free again');
finish_server($s);
done_testing;
