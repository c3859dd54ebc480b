# sandboxd -t: good and bad configs, with FILE:LINE:COLUMN errors.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use SbxTest;

my $dir = tempdir(CLEANUP => 1);
my $bin = sandboxd_bin();

sub run_t {
    my ($text, %env) = @_;
    my $f = "$dir/c.yaml";
    open my $fh, '>', $f or die;
    print $fh $text;
    close $fh;
    local @ENV{ keys %env } = values %env;
    my $out = `$bin -t -c $f 2>&1`;
    return ($? >> 8, $out, $f);
}

my ($rc, $out, $f) = run_t("listen: [127.0.0.1:3001]\nworkers: 2\npid_file: $dir/p\n");
is($rc, 0, '-t on a good config exits 0');
like($out, qr/test is successful/, '-t says the config is good');

($rc, $out) = run_t("$ENV{SBX_SRCDIR}/conf/sandboxd.yaml" =~ /./ ? do { local (@ARGV, $/) = "$ENV{SBX_SRCDIR}/conf/sandboxd.yaml"; <> } : '');
is($rc, 0, 'the shipped conf/sandboxd.yaml is valid');

($rc, $out, $f) = run_t("workers: 2\nsessions:\n  idle_timeout: soon\n  max_per_ip: 0\nbogus: 1\n");
is($rc, 1, '-t on a bad config exits 1');
like($out, qr/^\Q$f\E:3:17: sessions\.idle_timeout: expected a duration/m, 'bad duration at file:3:17');
like($out, qr/^\Q$f\E:4:15: sessions\.max_per_ip: 0 is out of range/m, 'out-of-range value at file:4:15');
like($out, qr/^\Q$f\E:5:1: unknown key "bogus"/m, 'unknown key at file:5:1');
like($out, qr/test failed/, '-t says the test failed');

($rc, $out, $f) = run_t("listen: [127.0.0.1:1\n");
is($rc, 1, 'a YAML syntax error exits 1');
like($out, qr/^\Q$f\E:2:1: did not find expected ','/m, 'syntax error with its position');

($rc, $out) = run_t("pid_file: $dir/p\n", SANDBOX_USE_GVISOR => 'perhaps');
is($rc, 1, 'a bad environment variable fails the test');
like($out, qr/\$SANDBOX_USE_GVISOR: expected true or false/, 'the variable is named');

$out = `$bin -c $dir/missing.yaml 2>&1`;
is($? >> 8, 1, 'starting with a missing file exits 1');
like($out, qr{\Q$dir\E/missing\.yaml: cannot open: No such file}, 'and says why');

$out = `$bin -x 2>&1`;
is($? >> 8, 1, 'an unknown option exits 1');
like($out, qr/usage: sandboxd/, 'and prints usage');

($rc, $out, $f) = run_t("pid_file: $dir/none.pid\n");
$out = `$bin -c $f -s reload 2>&1`;
is($? >> 8, 1, '-s without a running master exits 1');
like($out, qr/is sandboxd running\?/, 'and says so');

done_testing;
