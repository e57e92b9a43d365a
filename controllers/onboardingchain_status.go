package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
)

// summarizeChain counts the chain's users per step and sets its conditions. policies holds each
// step's SyncPolicy, nil where it does not exist.
func summarizeChain(chain *syncv1alpha1.OnboardingChain, policies []*syncv1alpha1.SyncPolicy, users []*syncv1alpha1.SyncUser) {
	st := &chain.Status
	gen := chain.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}

	stepOf := map[string]int{}
	st.Steps = make([]syncv1alpha1.ChainStepStatus, len(chain.Spec.Steps))
	for i, s := range chain.Spec.Steps {
		st.Steps[i] = syncv1alpha1.ChainStepStatus{Name: s.Name, Policy: s.Policy}
		stepOf[s.Name] = i
	}
	st.Users, st.CompletedUsers = 0, 0
	for i := range users {
		u := users[i]
		st.Users++
		if meta.IsStatusConditionTrue(u.Status.Conditions, syncv1alpha1.CompletedCondition) {
			st.CompletedUsers++
		}
		idx, ok := stepOf[u.Status.Step]
		if !ok || u.Status.Chain != chain.Name {
			continue // Not placed yet.
		}
		st.Steps[idx].Users++
		if meta.IsStatusConditionFalse(u.Status.Conditions, syncv1alpha1.SyncedCondition) {
			st.Steps[idx].Failing++
		}
	}

	var missing, stuck, failing []string
	stores := map[string]bool{}
	for i, p := range policies {
		step := chain.Spec.Steps[i]
		if p == nil {
			missing = append(missing, fmt.Sprintf("step %s: SyncPolicy %q not found", step.Name, step.Policy))
			continue
		}
		stores[p.Spec.Store.ClaimName+"/"+p.Spec.Store.SubPath] = true
		users := st.Steps[i].Users
		switch {
		case users > 0 && p.Spec.Suspend:
			stuck = append(stuck, fmt.Sprintf("step %s: policy %s is suspended with %d users on it", step.Name, p.Name, users))
		case users > 0 && meta.IsStatusConditionTrue(p.Status.Conditions, syncv1alpha1.StalledCondition):
			stuck = append(stuck, fmt.Sprintf("step %s: policy %s is stalled: %s", step.Name, p.Name,
				meta.FindStatusCondition(p.Status.Conditions, syncv1alpha1.StalledCondition).Message))
		}
		if n := st.Steps[i].Failing; n > 0 {
			failing = append(failing, fmt.Sprintf("step %s: %d users failing", step.Name, n))
		}
	}

	switch {
	case len(missing) > 0:
		kstatus.MarkStalled(&st.Conditions, gen, syncv1alpha1.OnboardingChainPolicyNotFoundReason, strings.Join(missing, "; "))
	case len(stores) > 1:
		msg := "The steps' policies use different record stores (spec.store), so users moving along the chain would be synced from scratch and items created twice; give them one store"
		kstatus.MarkStalled(&st.Conditions, gen, syncv1alpha1.OnboardingChainMixedStoresReason, msg)
	case len(stuck) > 0:
		msg := strings.Join(stuck, "; ")
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		set(syncv1alpha1.ReadyCondition, metav1.ConditionFalse, syncv1alpha1.OnboardingChainStepStuckReason, msg)
	default:
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.StalledCondition)
		msg := fmt.Sprintf("%d/%d users completed", st.CompletedUsers, st.Users)
		if len(failing) > 0 {
			msg += "; " + strings.Join(failing, "; ")
		}
		set(syncv1alpha1.ReadyCondition, metav1.ConditionTrue, syncv1alpha1.OnboardingChainReadyReason, msg)
	}

	if st.Users > 0 && st.CompletedUsers == st.Users {
		set(syncv1alpha1.CompletedCondition, metav1.ConditionTrue, syncv1alpha1.OnboardingChainCompletedReason,
			fmt.Sprintf("All %d users completed the chain", st.Users))
		meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
	} else {
		set(syncv1alpha1.CompletedCondition, metav1.ConditionFalse, syncv1alpha1.ProgressingReason,
			fmt.Sprintf("%d/%d users completed", st.CompletedUsers, st.Users))
		if st.Users > 0 && len(missing) == 0 && len(stores) <= 1 {
			set(syncv1alpha1.ReconcilingCondition, metav1.ConditionTrue, syncv1alpha1.ProgressingReason,
				fmt.Sprintf("%d users moving along the chain", st.Users-st.CompletedUsers))
		} else {
			meta.RemoveStatusCondition(&st.Conditions, syncv1alpha1.ReconcilingCondition)
		}
	}
}
