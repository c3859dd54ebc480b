# The production image (sandboxd/sandbox:bookworm) under the server's
# hardening: the sandbox user, a UTF-8 locale, git, a writable home and a
# read-only root.
use strict;
use warnings;
use Test::More;
use SbxTest;
use SbxSession;

my $s = SbxTest->new(workers => 2, yaml => "docker: {image: sandboxd/sandbox:bookworm}\n");

my ($st, $j, $r) = create_session($s);
is($st, 201, 'session on sandboxd/sandbox:bookworm is 201') or diag $r->{content};
my $sid = $j->{sessionId} // 'none';
my $cid = session_container($s, $sid);
my $i = docker_inspect($cid // 'none') // {};
is($i->{Config}{Image}, 'sandboxd/sandbox:bookworm', 'the container runs the production image');
is($i->{HostConfig}{Runtime}, 'runsc', 'under runsc');
ok($i->{State}{Running}, 'and is running (its login shell waits on the TTY)');
is($i->{Config}{WorkingDir}, '/home/sandbox', 'working directory /home/sandbox');

my ($rc, $out) = docker_cmd('exec', '-u', '1000', $cid // 'none', 'bash', '-lc',
    'id -u; echo $LANG; git --version; touch /home/sandbox/f && echo home-ok; touch /usr/x 2>&1 || echo ro-ok; '
      . 'echo "user=$(id -un) home=$HOME pwd=$(pwd)"; printf "\xc3\xa9\n" | wc -m; uname -r');
is($rc, 0, 'docker exec bash -lc runs') or diag $out;
like($out, qr/^1000$/m, 'id -u is 1000');
like($out, qr/^en_US\.UTF-8$/m, 'LANG is en_US.UTF-8');
like($out, qr/^git version \d+\.\d+/m, 'git is installed');
like($out, qr/^home-ok$/m, 'the home directory is writable by the sandbox user');
like($out, qr/^ro-ok$/m, '/usr is read-only');
like($out, qr/^user=sandbox home=\/home\/sandbox pwd=\/home\/sandbox$/m, 'user sandbox, HOME and pwd /home/sandbox');
like($out, qr/^2$/m, 'a UTF-8 "é" counts as one character (plus newline): the locale works');
like($out, qr/^4\.4\.0/m, 'the kernel is gVisor\'s (uname -r 4.4.0)');

# Even root (owner of /usr, no capabilities needed) cannot write there: the root filesystem is read-only.
($rc, $out) = docker_cmd('exec', '-u', '0', $cid // 'none', 'bash', '-c', 'touch /usr/x; touch /etc/x');
like($out, qr{/usr/x.*Read-only file system}, 'as uid 0: /usr is a read-only file system') or diag $out;
like($out, qr{/etc/x.*Read-only file system}, 'as uid 0: /etc is a read-only file system');

# The container's own process is the login shell the terminal will attach to.
($rc, $out) = docker_cmd('exec', $cid // 'none', 'cat', '/proc/1/cmdline');
like($out, qr/bash/, 'PID 1 in the sandbox is bash');

my ($dst) = delete_session($s, $sid);
is($dst, 200, 'DELETE is 200');
ok(!docker_exists($cid // 'none'), 'the container is gone');

finish_server($s);
done_testing;
