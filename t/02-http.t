# The HTTP basics: /health, JSON 404s, CORS preflight.
use strict;
use warnings;
use Test::More;
use SbxTest;

my $s = SbxTest->new(yaml => "allowed_origins: [https://app.example]\n");

ok(wait_until(5, sub { grep { $_->{generation} == 0 && $_->{workers} == 2 } $s->log_lines('all workers serving') }),
    'every worker tells the master it serves (control channel)');

my $r = http_get($s->url('/health'));
is($r->{status}, 200, 'GET /health is 200');
is($r->{headers}{'content-type'}, 'application/json', 'health is application/json');
my $h = json_decode($r->{content});
is($h->{status}, 'ok', 'health status ok');
is($h->{containers}, 0, 'no containers before any session');
like($h->{uptime}, qr/^(\d+h)?(\d+m)?\d+s$/, 'uptime reads like 2h15m30s');
like($h->{timestamp}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'timestamp is ISO-8601');

$r = http_get($s->url('/api/v1/no/such/route'));
is($r->{status}, 404, 'unknown route is 404');
is($r->{headers}{'content-type'}, 'application/json', '404 is JSON');
my $e = json_decode($r->{content});
ok($e && $e->{error} && $e->{message}, '404 body has error and message');

$r = http_req('POST', $s->url('/health'));
is($r->{status}, 405, 'POST /health is 405');

$r = http_req('OPTIONS', $s->url('/api/v1/sessions'),
    headers => { Origin => 'https://app.example', 'Access-Control-Request-Method' => 'POST' });
is($r->{status}, 204, 'preflight is 204');
is($r->{headers}{'access-control-allow-origin'}, 'https://app.example', 'allowed origin echoed');
like($r->{headers}{'access-control-allow-headers'}, qr/Content-Type, X-API-Key, Authorization/, 'allowed headers');

$r = http_req('OPTIONS', $s->url('/api/v1/sessions'), headers => { Origin => 'https://evil.example' });
ok(!exists $r->{headers}{'access-control-allow-origin'}, 'other origins get no CORS grant');

$r = http_get($s->url('/health'), headers => { Origin => 'https://app.example' });
is($r->{headers}{'access-control-allow-origin'}, 'https://app.example', 'simple requests carry CORS too');

# Many requests across both workers, keep-alive and not.
my $ka = HTTP::Tiny->new(keep_alive => 1, timeout => 5);
my $okc = grep { $ka->get($s->url('/health'))->{status} == 200 } 1 .. 300;
is($okc, 300, '300 keep-alive requests succeed');

is($s->stop, 0, 'SIGQUIT: master exits 0');
$s->check_log_clean;
done_testing;
