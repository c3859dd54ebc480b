# A minimal WebSocket client for the terminal tests: raw frames over a
# plain socket, so a test can send what a browser sends (and what a broken
# client sends), see every frame and close code, and read slowly on purpose.
package SbxWS;
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use Time::HiRes qw(time);

$SIG{PIPE} = "IGNORE"; # a server that closed on us must fail a test, not kill it

# SbxWS->connect($port, $path, headers => {...}) returns the client, or
# (undef, $status, $body) when the server answers the upgrade with HTTP.
sub connect {
    my ($class, $port, $path, %opt) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 5) or die "connect: $!";
    my $key = encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    my $req = "GET $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      . "Sec-WebSocket-Key: $key\r\nSec-WebSocket-Version: 13\r\n";
    $req .= "$_: $opt{headers}{$_}\r\n" for keys %{ $opt{headers} // {} };
    print $sock "$req\r\n";
    my $self = bless { sock => $sock, buf => '', out => '', msgs => [], closed => undef }, $class;
    my $deadline = time + 10;
    while ($self->{buf} !~ /\r\n\r\n/) {
        return (undef, 0, 'timeout') if time > $deadline || !$self->_fill(1);
    }
    my ($head, $rest) = split /\r\n\r\n/, $self->{buf}, 2;
    my ($status) = $head =~ m{^HTTP/1\.1 (\d+)};
    if ($status != 101) {
        my ($len) = $head =~ /content-length: (\d+)/i;
        while (defined $len && length($rest) < $len && $self->_fill(2)) { ($head, $rest) = split /\r\n\r\n/, $self->{buf}, 2 }
        return (undef, $status, $rest);
    }
    $self->{buf} = $rest;
    return $self;
}

sub _fill {
    my ($self, $timeout) = @_;
    return 0 unless IO::Select->new($self->{sock})->can_read($timeout);
    my $n = sysread($self->{sock}, my $chunk, 65536);
    return 0 unless $n;
    $self->{buf} .= $chunk;
    return 1;
}

sub send_frame {
    my ($self, $opcode, $payload, $fin) = @_;
    $fin //= 1;
    my $len = length $payload;
    my $hdr = chr(($fin ? 0x80 : 0) | $opcode);
    if ($len < 126)       { $hdr .= chr(0x80 | $len) }
    elsif ($len < 65536)  { $hdr .= chr(0x80 | 126) . pack('n', $len) }
    else                  { $hdr .= chr(0x80 | 127) . pack('Q>', $len) }
    my $mask = join '', map { chr int rand 256 } 1 .. 4;
    my $masked = $payload ^ substr($mask x (int($len / 4) + 1), 0, $len);
    my $data = $hdr . $mask . $masked;
    while (length $data) {
        my $n = syswrite($self->{sock}, $data);
        return 0 unless defined $n;
        substr($data, 0, $n, '');
    }
    return 1;
}

sub send_text   { my ($s, $t) = @_; utf8::encode($t) if utf8::is_utf8($t); $s->send_frame(0x1, $t) }
sub send_binary { $_[0]->send_frame(0x2, $_[1]) }
sub send_json   { $_[0]->send_text(JSON::PP->new->encode($_[1])) }
sub close       { my ($s, $code) = @_; $s->send_frame(0x8, pack('n', $code // 1000)) }

# Next data or close frame as {opcode, data}, answering pings; undef on timeout or EOF.
sub recv_frame {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        if (length($self->{buf}) >= 2) {
            my ($b0, $b1) = unpack 'CC', $self->{buf};
            my $len = $b1 & 0x7f, my $off = 2;
            if ($len == 126) { $len = length($self->{buf}) >= 4 ? unpack('n', substr $self->{buf}, 2, 2) : -1; $off = 4 }
            elsif ($len == 127) { $len = length($self->{buf}) >= 10 ? unpack('Q>', substr $self->{buf}, 2, 8) : -1; $off = 10 }
            if ($len >= 0 && length($self->{buf}) >= $off + $len) {
                my $data = substr($self->{buf}, $off, $len);
                substr($self->{buf}, 0, $off + $len, '');
                my $op = $b0 & 0x0f;
                $self->{frames}++;
                if ($op == 0x9) { $self->send_frame(0xA, $data); $self->{pings}++; next }
                if ($op == 0x8) { $self->{closed} = { code => length $data >= 2 ? unpack('n', $data) : 1005, reason => substr($data, 2) } }
                return { opcode => $op, data => $data };
            }
        }
        my $left = $deadline - time;
        return undef if $left <= 0 || !$self->_fill($left);
    }
}

# Reads frames until the collected terminal output matches $re; JSON control
# messages are kept in ->{msgs}. Returns true on a match.
sub read_until {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        return 1 if $self->{out} =~ $re;
        my $left = $deadline - time;
        return 0 if $left <= 0;
        my $f = $self->recv_frame($left) or return $self->{out} =~ $re;
        return $self->{out} =~ $re if $f->{opcode} == 0x8;
        $self->_take($f);
    }
}

sub _take {
    my ($self, $f) = @_;
    if ($f->{opcode} == 0x1 && $f->{data} =~ /^\{"type":/) {
        my $m = eval { JSON::PP->new->decode($f->{data}) };
        if ($m) { push @{ $self->{msgs} }, $m; return }
    }
    $self->{text_frames}++ if $f->{opcode} == 0x1;
    $self->{binary_frames}++ if $f->{opcode} == 0x2;
    $self->{out} .= $f->{data};
}

# Waits for a control message of the given type; returns it or undef.
sub wait_msg {
    my ($self, $type, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my ($m) = grep { $_->{type} eq $type } @{ $self->{msgs} };
        return $m if $m;
        my $left = $deadline - time;
        return undef if $left <= 0;
        my $f = $self->recv_frame($left) or return undef;
        return undef if $f->{opcode} == 0x8;
        $self->_take($f);
    }
}

# Waits for the server's close frame; returns {code, reason} or undef.
sub wait_close {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (!$self->{closed}) {
        my $left = $deadline - time;
        last if $left <= 0;
        my $f = $self->recv_frame($left) or last;
        $self->_take($f) unless $f->{opcode} == 0x8;
    }
    return $self->{closed};
}

1;
