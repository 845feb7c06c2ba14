#!/usr/bin/perl
# Creates the users and rights the sla-monitor RT tests need, through RT's own API.
# Idempotent. Run by scripts/rt/start.sh as root.
use strict;
use warnings;
use lib '/usr/share/request-tracker5/lib';
use RT -init;

my $queue = RT::Queue->new(RT->SystemUser);
$queue->Load('General') or die "no General queue";

sub ensure_user {
    my (%args) = @_;
    my $user = RT::User->new(RT->SystemUser);
    $user->Load($args{Name});
    unless ($user->id) {
        my ($ok, $msg) = $user->Create(%args);
        die "cannot create $args{Name}: $msg" unless $ok;
    }
    $user->SetPrivileged($args{Privileged} ? 1 : 0);
    $user->SetPassword($args{Password}) if $args{Password};
    return $user;
}

sub grant {
    my ($principal, @rights) = @_;
    for my $right (@rights) {
        my ($ok, $msg) = $principal->GrantRight(Right => $right, Object => $queue);
        die "cannot grant $right: $msg" unless $ok || $msg =~ /already has/i;
    }
}

# Customers may open and follow up tickets in General (as on a public helpdesk).
my $everyone = RT::Group->new(RT->SystemUser);
$everyone->LoadSystemInternalGroup('Everyone');
grant($everyone->PrincipalObj, qw(CreateTicket ReplyToTicket));
my $requestors = RT::Group->new(RT->SystemUser);
$requestors->LoadRoleGroup(Object => $queue, Name => 'Requestor');
grant($requestors->PrincipalObj, qw(ShowTicket SeeQueue));

ensure_user(Name => 'customer', Password => 'customer-pass', EmailAddress => 'customer@example.com',
            Privileged => 0, Lang => 'de');
my @staff = qw(ShowTicket SeeQueue ReplyToTicket CommentOnTicket ModifyTicket OwnTicket
               ShowTicketComments);
for my $name ('staff', 'sla-monitor') {
    my $user = ensure_user(Name => $name, Password => "$name-pass",
                           EmailAddress => "$name\@example.com", Privileged => 1);
    grant($user->PrincipalObj, @staff);
}
print "rt users and rights ready\n";
