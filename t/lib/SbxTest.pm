# Test harness for sandboxd integration tests, after nginx-tests' Test::Nginx:
# start the real binary in a temp dir on a free loopback port, talk to it
# over real HTTP, read its log as an oracle, and stop everything at the end.
package SbxTest;
use strict;
use warnings;
use Exporter 'import';
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);
use Test::More;

our @EXPORT = qw(free_port wait_until http_get http_req json_decode json_encode sandboxd_bin);

sub sandboxd_bin { $ENV{SBX_BIN} // die "SBX_BIN is not set (run through make check)\n" }

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', ReuseAddr => 1)
      or die "free_port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# Calls $cond every 50 ms until it returns true or $secs pass; returns its last value.
sub wait_until {
    my ($secs, $cond) = @_;
    my $deadline = time + $secs;
    while (1) {
        my $v = $cond->();
        return $v if $v || time >= $deadline;
        sleep 0.05;
    }
}

sub json_decode { my $v = eval { JSON::PP->new->decode($_[0]) }; return $v }
sub json_encode { JSON::PP->new->canonical->encode($_[0]) }

my $ua = HTTP::Tiny->new(timeout => 10, keep_alive => 0);

sub http_req {
    my ($method, $url, %opt) = @_;
    return $ua->request($method, $url, \%opt);
}
sub http_get { http_req('GET', @_) }

# SbxTest->new(yaml => "extra: keys\n", workers => 2, env => {...}) starts a server.
sub new {
    my ($class, %a) = @_;
    my $self = bless {
        dir     => tempdir('sbx-t-XXXXXX', TMPDIR => 1, CLEANUP => 1),
        port    => $a{port} // free_port(),
        workers => $a{workers} // 2,
        env     => $a{env} // {},
    }, $class;
    # Each server reaps only containers labelled with its own host_id: unique per
    # instance, so parallel tests never remove each other's sandboxes.
    $self->{host_id} = $a{host_id} // "t$$-$self->{port}";
    # Redis: quotas are global by design, so each test server gets a private redis-server
    # unless it is given one to share (two instances of one deployment).
    $self->{redis} = $a{redis} // SbxRedis->new;
    $self->{conf} = "$self->{dir}/sandboxd.yaml";
    $self->{log}  = "$self->{dir}/sandboxd.log";
    $self->write_conf($a{yaml} // '', $a{listen});
    $self->start unless $a{no_start};
    return $self;
}

sub url { my ($self, $path) = @_; "http://127.0.0.1:$self->{port}$path" }

sub write_conf {
    my ($self, $extra, $listen) = @_;
    $listen //= ["127.0.0.1:$self->{port}"];
    open my $fh, '>', $self->{conf} or die "$self->{conf}: $!";
    print $fh "listen: [" . join(', ', @$listen) . "]\n";
    print $fh "workers: $self->{workers}\n" unless $extra =~ /^workers:/m;
    print $fh "pid_file: $self->{dir}/sandboxd.pid\n";
    print $fh "host_id: $self->{host_id}\n" unless $extra =~ /^host_id:/m;
    print $fh "redis: {url: '" . $self->{redis}->url . "'}\n" unless $extra =~ /^redis:/m;
    print $fh "log: {level: info}\n" unless $extra =~ /^log:/m;
    print $fh $extra;
    close $fh;
}

sub start {
    my ($self) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $ENV{$_} = $self->{env}{$_} for keys %{ $self->{env} };
        # Under --enable-sanitizers: ASan's default 256 MB quarantine of freed memory would read as
        # growth in the memory tests; leaks are a valgrind matter here. No effect on a normal build.
        $ENV{ASAN_OPTIONS} = join ':', grep { length } $ENV{ASAN_OPTIONS} // '', 'quarantine_size_mb=8'
          unless ($ENV{ASAN_OPTIONS} // '') =~ /quarantine_size_mb/;
        open STDOUT, '>>', $self->{log} or die;
        open STDERR, '>>', $self->{log} or die;
        exec sandboxd_bin(), '-c', $self->{conf} or die "exec: $!";
    }
    $self->{pid} = $pid;
    my $up = wait_until(10, sub { my $r = http_get($self->url('/health')); $r->{status} == 200 });
    die "sandboxd did not come up on port $self->{port}:\n" . $self->log_text unless $up;
    return $self;
}

sub log_text {
    my ($self) = @_;
    open my $fh, '<', $self->{log} or return '';
    local $/;
    return <$fh>;
}

# Parsed JSON log lines (those that parse), optionally filtered by msg.
sub log_lines {
    my ($self, $msg) = @_;
    my @l = grep { defined } map { json_decode($_) } split /\n/, $self->log_text;
    return defined $msg ? grep { ($_->{msg} // '') eq $msg } @l : @l;
}

# Pids of the running workers, read from the master's children.
sub worker_pids {
    my ($self) = @_;
    my @kids;
    for my $d (glob '/proc/[0-9]*') {
        open my $fh, '<', "$d/stat" or next;
        my $st = <$fh>;
        next unless $st && $st =~ /^\d+ \(.*\) \S (\d+)/;
        push @kids, ($d =~ /(\d+)$/)[0] if $1 == $self->{pid};
    }
    return sort { $a <=> $b } @kids;
}

sub signal { my ($self, $sig) = @_; kill $sig, $self->{pid} }

# Waits (bounded) for the master to exit; returns its exit status or undef.
sub wait_exit {
    my ($self, $secs) = @_;
    my $status;
    wait_until($secs // 10, sub {
        my $r = waitpid($self->{pid}, WNOHANG);
        $status = $? if $r == $self->{pid};
        return $r == $self->{pid} || $r == -1;
    });
    delete $self->{pid} if defined $status;
    return $status;
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    my @kids = $self->worker_pids;
    kill 'QUIT', $self->{pid};
    my $st = $self->wait_exit(15);
    unless (defined $st) {
        kill 'KILL', $self->{pid}, @kids;
        $self->wait_exit(5);
    }
    kill 'KILL', @kids;
    return $st;
}

# Fails the calling test if the log shows a crash or a sanitizer report.
sub check_log_clean {
    my ($self) = @_;
    my $text = $self->log_text;
    my @bad = grep { /AddressSanitizer|runtime error:|LeakSanitizer|Segmentation|"signal":(?:6|11)\b/ } split /\n/, $text;
    ok(!@bad, 'server log shows no crash or sanitizer report') or diag join("\n", @bad[0 .. ($#bad < 5 ? $#bad : 5)]);
}

# Ids of this instance's containers (all states), by its host label.
sub containers {
    my ($self) = @_;
    my @ids = split ' ', `docker ps -aq --filter label=sandboxd.host=$self->{host_id} 2>/dev/null`;
    return @ids;
}

sub remove_containers {
    my ($self) = @_;
    my @ids = $self->containers;
    system("docker rm -f @ids >/dev/null 2>&1") if @ids;
}

sub DESTROY {
    my $self = shift;
    local $?;
    $self->stop if $self->{pid};
    $self->remove_containers if $self->{host_id} && !$self->{keep_containers};
}

1;

# A private redis-server on a free loopback port, stopped when the last user lets go.
package SbxRedis;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep);

sub new {
    my ($class) = @_;
    my $self = bless { port => SbxTest::free_port() }, $class;
    $self->start;
    return $self;
}

sub url { "redis://127.0.0.1:$_[0]{port}/0" }

sub start {
    my ($self) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'redis-server', '--port', $self->{port}, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no' or die;
    }
    $self->{pid} = $pid;
    SbxTest::wait_until(10, sub { `redis-cli -p $self->{port} ping 2>/dev/null` =~ /PONG/ })
      or die "redis-server did not start on $self->{port}";
}

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

# Runs redis-cli against this server; returns its output.
sub cli { my ($self, @args) = @_; my $a = join ' ', map { "'$_'" } @args; `redis-cli -p $self->{port} $a 2>&1` }

sub DESTROY { local $?; $_[0]->stop }
