# An output flood with a reader that stalls, on the real image under gVisor:
# it reaches the client complete and in order, and the workers' memory
# stays bounded because the worker stops reading the container.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use SbxTest;
use SbxWS;

my $s = SbxTest->new(yaml => "docker: {image: sandboxd/sandbox:bookworm}\nsessions: {commands_per_minute: 1000}\n");

sub rss_kb { my $t = 0; for my $p ($s->worker_pids) { open my $f, '<', "/proc/$p/status" or next; /^VmRSS:\s+(\d+)/ and $t += $1 for <$f> } $t }

my $r = http_req('POST', $s->url('/api/v1/sessions'), content => '{"toolPair":"t"}');
is($r->{status}, 201, 'session created') or diag $r->{content};
my $id = json_decode($r->{content})->{sessionId};
my $ws = SbxWS->connect($s->{port}, "/api/v1/sessions/$id/ws");
ok($ws && $ws->wait_msg('initComplete', 30), 'terminal ready');
ok($ws->read_until(qr/\$ (?:\e\[[0-9;]*m)*$/, 10), 'at the prompt'); # type at the prompt, as a person does

$ENV{FLOOD_BYTES} //= 50_000_000;
my $rss0 = rss_kb();
$ws->send_text("yes | head -c $ENV{FLOOD_BYTES}; printf '\\105ND\\n'\r");
sleep 2; # read nothing (under 3 ping intervals, or we would look vanished): the worker must stop reading the container, not buffer 50 MB
my $rss_stalled = rss_kb();
my ($lines, $bad, $tail, $done, $max_rss) = (0, 0, '', 0, $rss_stalled);
my $deadline = time + 300; # gVisor's TTY moves about 1-2 MB/s here
my $seen_cmd = 0;
while (!$done && time < $deadline) {
    my $f = $ws->recv_frame(10) or do { diag "no frame for 10 s; seen_cmd=$seen_cmd lines=$lines tail=" . unpack("H*", substr($tail, 0, 60)); last };
    next if $f->{opcode} != 0x1 && $f->{opcode} != 0x2;
    my $data = $tail . $f->{data};
    unless ($seen_cmd) { # skip the echo of the command line itself
        unless ($data =~ s/^.*?\\105ND\\n'\r\n//s) { $tail = $data; next }
        $seen_cmd = 1;
    }
    $data =~ s/^(?:\e\[[0-9;?]*[a-zA-Z]|\r)+// unless $lines; # bash switching bracketed paste off
    $done = 1 if $data =~ s/END\r\n.*//s;
    my @l = split /\r\n/, $data, -1;
    $tail = pop(@l) // ""; # a partial line, or (when done) the empty rest after the last "y\r\n"
    for (@l) { if ($_ eq 'y') { $lines++ } else { $bad++; diag 'odd line: ' . unpack('H*', substr($_, 0, 40)) if $bad < 3 } }
    if (($lines % 1000000) < 3000) { my $r = rss_kb(); $max_rss = $r if $r > $max_rss }
}
ok($done, 'the flood ends with its marker');
is($lines, $ENV{FLOOD_BYTES} / 2, "all $ENV{FLOOD_BYTES} bytes arrive, as lines of y");
is($bad, 0, 'in order, nothing mangled');
cmp_ok($rss_stalled - $rss0, '<', 32 * 1024, sprintf('a stalled reader does not grow the workers (%+d KiB)', $rss_stalled - $rss0));
cmp_ok($max_rss - $rss0, '<', 32 * 1024, sprintf('nor does the whole flood (%+d KiB)', $max_rss - $rss0));

http_req('DELETE', $s->url("/api/v1/sessions/$id"));
$s->stop;
is(scalar $s->containers, 0, 'no container left behind');
$s->check_log_clean;
done_testing;
