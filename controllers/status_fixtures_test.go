package controllers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// t0 is the time the table tests' clocks read; at(m) is m minutes after it.
var t0 = time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC)

func at(minutes int) *metav1.Time {
	t := metav1.NewTime(t0.Add(time.Duration(minutes) * time.Minute))
	return &t
}

func threeSteps() *syncv1alpha1.OnboardingChain {
	return &syncv1alpha1.OnboardingChain{
		ObjectMeta: metav1.ObjectMeta{Name: "onboarding"},
		Spec: syncv1alpha1.OnboardingChainSpec{Steps: []syncv1alpha1.ChainStep{
			{Name: "import", Policy: "p-import"}, {Name: "verify", Policy: "p-verify"}, {Name: "bau", Policy: "p-bau"},
		}},
	}
}

// cycle is an empty cycle result on policy that ran from start to end (minutes after t0).
func cycle(policy string, start, end int, mutate ...func(*syncv1alpha1.CycleResult)) *syncv1alpha1.CycleResult {
	c := &syncv1alpha1.CycleResult{ID: "job-" + policy, Policy: policy, StartTime: at(start), CompletionTime: at(end), Empty: true}
	for _, m := range mutate {
		m(c)
	}
	return c
}

// pointers is users as the user index hands them out.
func pointers(users []syncv1alpha1.SyncUser) []*syncv1alpha1.SyncUser {
	out := make([]*syncv1alpha1.SyncUser, len(users))
	for i := range users {
		out[i] = &users[i]
	}
	return out
}
