# The terminal page (conf/page) in a real browser: Debian's chromium, driven by
# playwright-core from conf/page/node_modules through t/lib/page-drive.mjs. It types
# and reads the screen, pastes, reloads into the same shell, resizes, drops and regains
# the connection, and shows the refusals (ended, capacity, rate limit) in its status line.
# Screenshots: $SBX_OUT_DIR (default t/out)/page.png and page-refused.png.
use strict;
use warnings;
use Test::More;
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use SbxTest;

my $src      = $ENV{SBX_SRCDIR} // File::Spec->rel2abs(dirname(__FILE__) . '/..');
my $page_dir = "$src/conf/page";
my $chromium = $ENV{CHROMIUM} // '/usr/bin/chromium';
my $out_dir  = File::Spec->rel2abs($ENV{SBX_OUT_DIR} // 't/out');

# Missing pieces are a broken set-up, not a reason to skip: say which step supplies them.
my @missing;
push @missing, "$chromium (setup.sh installs Debian's chromium)" unless -x $chromium;
push @missing, "node (setup.sh installs nodejs)" unless system('node --version >/dev/null 2>&1') == 0;
push @missing, "$page_dir/node_modules ($_) (setup.sh runs npm install --prefix conf/page)"
  for grep { !-d "$page_dir/node_modules/$_" } qw(@xterm/xterm @xterm/addon-fit playwright-core);
if (@missing) {
    fail("the browser test needs: $_") for @missing;
    done_testing;
    exit;
}

# capacity 2 and max_per_ip 1 let the page meet both refusals; 127.0.0.1 is trusted so that
# the driver can take capacity from other (forwarded) addresses.
my $s = SbxTest->new(yaml => "docker: {image: sandboxd/test:busybox}\n"
      . "page: {enabled: true, dir: '$page_dir'}\n"
      . "trusted_proxies: [127.0.0.1]\n"
      . "sessions: {capacity: 2, max_per_ip: 1, per_ip_per_hour: 1000, commands_per_minute: 1000}\n");

my $r = http_get($s->url('/'));
is($r->{status}, 200, 'GET / serves the page');
like($r->{content}, qr{<script src="app\.js">}, 'its index.html');
for my $f (qw(app.js node_modules/@xterm/xterm/lib/xterm.js node_modules/@xterm/addon-fit/lib/addon-fit.js
    node_modules/@xterm/xterm/css/xterm.css)) {
    is(http_get($s->url("/$f"))->{status}, 200, "GET /$f");
}

make_path($out_dir);
unlink "$out_dir/page.png", "$out_dir/page-refused.png";
local $ENV{SBX_PAGE_DIR} = $page_dir;
local $ENV{CHROMIUM}     = $chromium;
# The driver bounds its own waits and the whole run (75 s); timeout(1) is the last resort.
open(my $drv, '-|', 'timeout', '-k', '5', '100', 'node', "$src/t/lib/page-drive.mjs", $s->url('/'), $out_dir)
  or die "node: $!";
my @sessions;
my $checks = 0;
while (my $line = <$drv>) {
    chomp $line;
    my $j = json_decode($line);
    if ($j && exists $j->{ok}) {
        $checks++;
        ok($j->{ok}, $j->{name}) or diag($j->{diag} // '');
    } elsif ($j && $j->{sessions}) {
        @sessions = @{ $j->{sessions} };
    } else {
        diag($line);
    }
}
close $drv;
my $status = $?;
ok(($status & 127) == 0 && ($status >> 8) != 124, 'the browser driver finished by itself') or diag("status $status");
cmp_ok($checks, '>=', 30, 'and ran every check');
ok(-s "$out_dir/page.png", "screenshot at $out_dir/page.png");

# Delete whatever the page or the driver left, and see every container go.
my @undeleted = grep { http_req('DELETE', $s->url("/api/v1/sessions/$_"))->{status} != 200 } @sessions;
ok(@sessions && !@undeleted, 'the ' . scalar(@sessions) . ' sessions the test used are deleted') or diag("@undeleted");
ok(wait_until(15, sub { !$s->containers }), 'no container left behind') or diag(join ' ', $s->containers);
$s->stop;
$s->check_log_clean;
done_testing;
