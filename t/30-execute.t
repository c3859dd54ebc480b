# POST /api/v1/execute with real containers: languages, streams, exit
# codes, stdin, timeout, output cap, the four bombs, limits, and cleanup.
use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);
use SbxTest;

my $s = SbxTest->new(yaml => "docker: {image: sandboxd/sandbox:bookworm}\ntrusted_proxies: [127.0.0.1]\n"
      . "execute: {per_ip_per_minute: 100, output_limit: 64k, max_timeout: 20s}\n");

sub run {
    my ($body, %h) = @_;
    my $r = http_req('POST', $s->url('/api/v1/execute'), content => ref $body ? json_encode($body) : $body,
        headers => { 'Content-Type' => 'application/json', %h });
    return ($r->{status}, json_decode($r->{content}) // { raw => $r->{content} }, $r);
}

my ($st, $j);
for my $l (['sh', 'echo hello from sh'], ['bash', 'echo "hello from ${BASH:+bash}"'], ['python3', 'print("hello from python3")']) {
    ($st, $j) = run({ code => $l->[1], language => $l->[0] });
    is($st, 200, "$l->[0]: 200");
    is($j->{stdout}, "hello from $l->[0]\n", "$l->[0]: hello world");
    is($j->{language}, $l->[0], "$l->[0]: the language is echoed");
}
($st, $j) = run({ code => 'echo default' });
is($j->{language}, 'sh', '{"code"} alone runs sh, as the Bun sandbox does');
($st, $j) = run({ code => 'echo to-out; echo to-err >&2; exit 7' });
is($j->{stdout}, "to-out\n", 'stdout apart');
is($j->{stderr}, "to-err\n", 'stderr apart');
is($j->{exitCode}, 7, 'a non-zero exit code');
ok(!$j->{timedOut} && !$j->{truncated}, 'neither timed out nor truncated');
like($j->{durationMs}, qr/^\d+$/, 'durationMs is a number');
($st, $j) = run({ code => 'import sys; print(sys.stdin.read().upper(), end="")', language => 'python3', stdin => "line one\nline two\n" });
is($j->{stdout}, "LINE ONE\nLINE TWO\n", 'stdin reaches the program and ends');
($st, $j) = run({ code => 'printf "\\377bad\\n"' });
is($j->{stdout}, "\xef\xbf\xbdbad\n", 'output that is not UTF-8 is mended to U+FFFD, and the JSON stays valid');
my $r = http_req('POST', $s->url('/execute'), content => '{"code":"echo bun"}');
is(json_decode($r->{content})->{stdout}, "bun\n", '/execute without the prefix works too');

# Timeout and cap.
my $t0 = time;
($st, $j) = run({ code => 'sleep 30', timeoutMs => 1500 });
ok($j->{timedOut}, 'timeoutMs: the run is killed and says timedOut');
cmp_ok(time - $t0, '<', 10, 'and the answer comes soon after the timeout');
($st, $j) = run({ code => 'yes' });
ok($j->{truncated}, 'an endless printer is cut at output_limit (truncated)');
is(length $j->{stdout}, 65536, 'stdout holds exactly output_limit bytes');
ok(!$j->{timedOut}, 'it is stopped by the cap, not the timeout');

# The four bombs: a normal JSON answer each, and the next run is fine.
my %bombs = (
    'fork bomb'     => 'b(){ b | b & }; b; sleep 3; echo survived',
    'memory bomb'   => 'python3 -c "x = []\nwhile True: x.append(bytearray(1 << 20))"',
    'output flood'  => 'cat /dev/zero',
    'disk fill'     => 'dd if=/dev/zero of=/tmp/fill bs=1M count=1000; echo rc=$?; head -c 100 /dev/zero > /tmp/small && echo wrote-after',
);
for my $name (sort keys %bombs) {
    ($st, $j, $r) = run({ code => $bombs{$name}, timeoutMs => 15000 });
    is($st, 200, "$name: a normal JSON answer") or diag $r->{content};
    ($st, $j) = run({ code => 'echo next-run-ok' });
    is($j->{stdout}, "next-run-ok\n", "$name: the next run is unaffected");
}
is(http_get($s->url('/health'))->{status}, 200, 'the server is healthy after the bombs');

# Errors.
($st, $j) = run('{"code": ');
is($st, 400, 'malformed JSON: 400');
($st, $j) = run({ code => 'x', language => 'cobol' });
is($st, 400, 'unknown language: 400');
($st, $j) = run({ code => '' });
is($st, 400, 'empty code: 400');
($st, $j) = run({ code => 'x', timeoutMs => 999999 });
is($st, 400, 'timeoutMs over max_timeout: 400');
($st, $j) = run({ code => 'x' x (65 * 1024) });
is($st, 413, 'code over 64 KiB: 413');
is($j->{error}, 'PayloadTooLarge', '413 has the error shape');

# Concurrent runs from two client IPs (through the trusted proxy header).
my @kids;
for my $ip ('198.51.100.1', '198.51.100.2') {
    for my $n (1 .. 2) {
        my $pid = fork // die;
        if ($pid == 0) {
            my ($cst, $cj) = run({ code => "echo $ip-$n" }, 'X-Forwarded-For' => $ip);
            POSIX::_exit($cst == 200 && $cj->{stdout} eq "$ip-$n\n" ? 0 : 1); # not exit: that would stop the server
        }
        push @kids, $pid;
    }
}
my $good = 0;
for (@kids) { waitpid($_, 0); $good++ if $? == 0 }
is($good, 4, 'four concurrent runs from two IPs all answer correctly');

# The per-IP rate limit.
my $lim = SbxTest->new(yaml => "docker: {image: sandboxd/test:busybox}\nexecute: {per_ip_per_minute: 2}\n");
my @codes = map { http_req('POST', $lim->url('/api/v1/execute'), content => '{"code":"true"}')->{status} } 1 .. 3;
is_deeply(\@codes, [200, 200, 429], 'per_ip_per_minute: the third run in a minute is 429');
$r = http_req('POST', $lim->url('/api/v1/execute'), content => '{"code":"true"}');
ok($r->{headers}{'retry-after'} >= 1, '429 carries Retry-After');
$lim->stop;

ok(wait_until(20, sub { !$s->containers }), 'no container is left behind');
$s->stop;
$s->check_log_clean;
$lim->check_log_clean;
done_testing;
