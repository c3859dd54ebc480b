# Helpers for the session tests (t/1x-*.t): the toolkata session API over
# real HTTP, and the Docker CLI as an independent oracle of what the server
# did to the engine. Builds on SbxTest; every wait here is bounded.
package SbxSession;
use strict;
use warnings;
use Exporter 'import';
use JSON::PP;
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(time);
use SbxTest;

our @EXPORT = qw(api create_session get_session delete_session session_container docker_inspect
  docker_exists docker_cmd docker_timeout health_containers busybox_yaml diag_log cleanup_sessions raw_http finish_server);

# The small test image, so each create costs ~0.4 s under runsc.
sub busybox_yaml { "docker: {image: sandboxd/test:busybox}\n" }

# DELETE answers once Docker has removed the container, which for a gVisor
# sandbox on a loaded host can take well over SbxTest's 10 s.
my $ua = HTTP::Tiny->new(timeout => 60, keep_alive => 0);

# api($s, METHOD, '/api/v1/...', body => {...}|'raw', headers => {...}) -> ($status, $json_or_undef, $response)
sub api {
    my ($s, $method, $path, %o) = @_;
    my %opt = (headers => { %{ $o{headers} // {} } });
    if (defined $o{body}) {
        $opt{content} = ref $o{body} ? json_encode($o{body}) : $o{body};
        $opt{headers}{'Content-Type'} //= 'application/json';
    }
    my $r = $ua->request($method, $s->url($path), \%opt);
    return ($r->{status}, json_decode($r->{content} // ''), $r);
}

# raw_http($s, "GET / HTTP/1.1\r\nHost: x\r\n...") for what HTTP::Tiny cannot send (a Host of
# our choice). The request text is sent as is; the reply is read to EOF (send Connection: close).
# Returns ($status, {lower-case header => value}, $body); status 0 if no reply came in 10 s.
sub raw_http {
    my ($s, $text) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$s->{port}", Timeout => 5) or return (0, {}, "connect: $!");
    $sock->autoflush(1);
    print $sock $text;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    my $deadline = time + 10;
    while (time < $deadline) {
        next unless $sel->can_read(1);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    close $sock;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    return (0, {}, $buf) unless defined $head && $head =~ m{^HTTP/1\.\d (\d{3})};
    my $status = $1;
    my %h = map { /^([^:]+):\s*(.*)$/ ? (lc $1 => $2) : () } split /\r\n/, $head;
    return ($status, \%h, $body // '');
}

# Sessions created through create_session, per server, for cleanup_sessions.
my %made;

# create_session($s, %opt) -> ($status, $json, $response); body defaults to {toolPair => 'git-jj'}.
sub create_session {
    my ($s, %o) = @_;
    $o{body} //= { toolPair => 'git-jj' };
    my @r = api($s, 'POST', '/api/v1/sessions', %o);
    push @{ $made{"$s"} }, [$r[1]{sessionId}, $o{headers}] if $r[0] == 201 && $r[1] && $r[1]{sessionId};
    return @r;
}

sub get_session { my ($s, $id, %o) = @_; api($s, 'GET', "/api/v1/sessions/$id", %o) }

sub delete_session { my ($s, $id, %o) = @_; api($s, 'DELETE', "/api/v1/sessions/$id", %o) }

# DELETEs every session this file created on $s (already-gone ones answer 200
# too), and then the sessions of any container still labelled for $s (made by
# raw requests). A container whose session the server no longer knows stays:
# a DELETE of an unknown id removes nothing, so server leaks remain visible.
sub cleanup_sessions {
    my ($s, %o) = @_;
    for my $m (@{ delete $made{"$s"} // [] }) {
        my %h = (%{ $m->[1] // {} }, %{ $o{headers} // {} });
        delete_session($s, $m->[0], headers => \%h);
    }
    for my $c ($s->containers) {
        my $sid = (docker_inspect($c) // {})->{Config}{Labels}{'sandboxd.session'};
        delete_session($s, $sid, headers => $o{headers} // {}) if defined $sid && $sid =~ /^[A-Za-z0-9_-]{22}$/;
    }
}

# The container id of a session of $s, found by its labels (all states), or undef.
sub session_container {
    my ($s, $sid) = @_;
    my @ids = split ' ', `docker ps -aq --no-trunc --filter label=sandboxd.host=$s->{host_id} --filter label=sandboxd.session=$sid 2>/dev/null`;
    return $ids[0];
}

# docker inspect of one container as a hash, or undef when it does not exist.
sub docker_inspect {
    my ($id) = @_;
    my $out = `docker inspect $id 2>/dev/null`;
    return undef if $? != 0;
    my $j = json_decode($out);
    return ref $j eq 'ARRAY' ? $j->[0] : undef;
}

sub docker_exists {
    my ($id) = @_;
    system("docker inspect $id >/dev/null 2>&1");
    return $? == 0;
}

# Runs a docker command line (a list), returns (exit status, combined output).
sub docker_cmd {
    my @cmd = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec 'docker', @cmd or exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

# docker_cmd bounded by coreutils timeout(1): exit status 124 when it ran out of time.
sub docker_timeout {
    my ($secs, @cmd) = @_;
    my $pid = open(my $fh, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec 'timeout', '-k', '5', $secs, 'docker', @cmd or exit 127;
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? >> 8, $out);
}

sub health_containers {
    my ($s) = @_;
    my $h = json_decode(http_get($s->url('/health'))->{content} // '');
    return $h ? $h->{containers} : undef;
}

# On a failed test, shows the server log (call at the end of a file).
sub diag_log {
    my ($s) = @_;
    my $ok = Test::More->builder->is_passing;
    diag("server log ($s->{log}):\n" . $s->log_text) unless $ok;
}

# The end of every session test file: delete what it made, stop the server
# (status 0), and check the log and that no container is left.
sub finish_server {
    my ($s) = @_;
    cleanup_sessions($s);
    is($s->stop, 0, 'server stops with status 0');
    $s->check_log_clean;
    is(scalar(() = $s->containers), 0, 'no container left behind');
    diag_log($s);
}

1;
