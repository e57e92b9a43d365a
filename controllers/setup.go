package controllers

import (
	"context"
	"fmt"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/chainsync/chainsync/internal/webhook"
)

// Options configure the controllers.
type Options struct {
	// Jobs builds the cycle Jobs: the chainsync image to run.
	Jobs CycleJobBuilder
	// Clock is the time source; tests inject a fake one.
	Clock clock.PassiveClock
}

// SetupWithManager registers the field indexes and the four controllers with mgr.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	for name, setup := range map[string]func(context.Context, ctrl.Manager) error{
		"SyncUser": setupSyncUserIndexers, "SyncPolicy": setupSyncPolicyIndexers, "OnboardingChain": setupOnboardingChainIndexers,
		"SyncReceiver": setupSyncReceiverIndexers,
	} {
		if err := setup(ctx, mgr); err != nil {
			return fmt.Errorf("indexing for the %s controller: %w", name, err)
		}
	}
	users, err := newUserIndex(ctx, mgr)
	if err != nil {
		return fmt.Errorf("indexing SyncUsers: %w", err)
	}
	if err := (&SyncPolicyReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Clock: opts.Clock,
		Recorder: mgr.GetEventRecorder("syncpolicy-controller"), Jobs: opts.Jobs, Users: users,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the SyncPolicy controller: %w", err)
	}
	if err := (&SyncUserReconciler{
		Client: mgr.GetClient(), Clock: opts.Clock, Recorder: mgr.GetEventRecorder("syncuser-controller"), Jobs: opts.Jobs, Users: users,
		startedAt: opts.Clock.Now(),
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the SyncUser controller: %w", err)
	}
	if err := (&SyncEnrolmentReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Clock: opts.Clock,
		Recorder: mgr.GetEventRecorder("syncenrolment-controller"), Jobs: opts.Jobs,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the SyncEnrolment controller: %w", err)
	}
	if err := (&OnboardingChainReconciler{Client: mgr.GetClient(), Users: users}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the OnboardingChain controller: %w", err)
	}
	if err := (&SyncReceiverReconciler{Client: mgr.GetClient(),
		Tokens: &webhook.Tokens{Metadata: mgr.GetClient(), Secrets: mgr.GetAPIReader()}}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the SyncReceiver controller: %w", err)
	}
	objectState.watch(mgr)
	return nil
}
