// Package userfixtures holds the chains, policies and cycle results the table tests of user
// status and policy planning are written with, on a clock of their own: T0, and At(m) minutes
// after it.
package userfixtures

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// T0 is the time the tests' clocks read.
var T0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

// At is minutes after T0.
func At(minutes int) *metav1.Time {
	t := metav1.NewTime(T0.Add(time.Duration(minutes) * time.Minute))
	return &t
}

// ThreeSteps is a chain import → verify → bau on the policies p-import, p-verify and p-bau.
func ThreeSteps() *syncv1alpha1.OnboardingChain {
	return &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding"},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "p-import"}, {Name: "verify", Policy: "p-verify"}, {Name: "bau", Policy: "p-bau"},
		}},
	}
}

// Cycle is an empty cycle result on policy that ran from start to end, in minutes after T0.
func Cycle(policy string, start, end int, mutate ...func(*syncv1alpha1.CycleResult)) *syncv1alpha1.CycleResult {
	c := &syncv1alpha1.CycleResult{ID: "job-" + policy, Policy: policy, StartTime: At(start), CompletionTime: At(end), Empty: true}
	for _, m := range mutate {
		m(c)
	}
	return c
}

// HourlyPolicy is policy p in namespace ns, cycling hourly with 10% jitter, two users per Job.
func HourlyPolicy() *syncv1alpha1.SyncPolicy {
	return &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: syncv1alpha1.SyncPolicySpec{
			Schedule:    syncv1alpha1.Schedule{Interval: "1h", JitterPercent: 10},
			Store:       syncv1alpha1.RecordStore{ClaimName: "records", SubPath: "chainsync"},
			JobTemplate: syncv1alpha1.CycleJobTemplate{UsersPerJob: 2, Parallelism: 4, Concurrency: 3, ServiceAccountName: "chainsync-cycle"},
		},
	}
}
