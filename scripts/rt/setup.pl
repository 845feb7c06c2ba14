#!/usr/bin/perl
# Creates the users and rights the sla-monitor RT tests need, through RT's own API.
# Idempotent. Run by scripts/rt/start.sh as root.
use strict;
use warnings;
use lib '/usr/share/request-tracker5/lib';
use RT -init;

my $queue = RT::Queue->new(RT->SystemUser);
$queue->Load('General') or die "no General queue";
# The queue "SLA" has RT's SLA enabled (scripts/rt/sla.pm); General keeps it disabled.
my $sla_queue = RT::Queue->new(RT->SystemUser);
$sla_queue->Load('SLA');
unless ($sla_queue->id) {
    my ($ok, $msg) = $sla_queue->Create(Name => 'SLA', SLADisabled => 0);
    die "cannot create queue SLA: $msg" unless $ok;
}
$sla_queue->SetSLADisabled(0) if $sla_queue->SLADisabled;

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
    my ($principal, $objects, @rights) = @_;
    for my $object (@$objects) {
        for my $right (@rights) {
            my ($ok, $msg) = $principal->GrantRight(Right => $right, Object => $object);
            die "cannot grant $right: $msg" unless $ok || $msg =~ /already has/i;
        }
    }
}

# Customers may open and follow up tickets in General (as on a public helpdesk).
my $everyone = RT::Group->new(RT->SystemUser);
$everyone->LoadSystemInternalGroup('Everyone');
grant($everyone->PrincipalObj, [$queue, $sla_queue], qw(CreateTicket ReplyToTicket));
for my $object ($queue, $sla_queue) {
    my $requestors = RT::Group->new(RT->SystemUser);
    $requestors->LoadRoleGroup(Object => $object, Name => 'Requestor');
    grant($requestors->PrincipalObj, [$object], qw(ShowTicket SeeQueue));
}

ensure_user(Name => 'customer', Password => 'customer-pass', EmailAddress => 'customer@example.com',
            Privileged => 0, Lang => 'de');
my @staff = qw(ShowTicket SeeQueue ReplyToTicket CommentOnTicket ModifyTicket OwnTicket
               ShowTicketComments);
for my $name ('staff', 'sla-monitor') {
    my $user = ensure_user(Name => $name, Password => "$name-pass",
                           EmailAddress => "$name\@example.com", Privileged => 1);
    grant($user->PrincipalObj, [$queue, $sla_queue], @staff);
}
print "rt users and rights ready\n";
